"""Request bodies at the edge: bounded in size before they are read, and refused when their JSON text is not
well-formed Unicode — one check for every route and every API, ahead of any parsing.

A body over ``limits.max_request_bytes`` gets 413 as soon as its Content-Length says so, or as soon as the
bytes read pass the limit (chunked uploads); nothing more of it is read. JSON text must be UTF-8 without
unpaired surrogate escapes (``"\\ud800"``): Python would decode them into strings that fail later, deep in a
tokenizer or an encoder, as a 500.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lollms_server.api.errors import error_response

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # routes never read a body here
# A \uXXXX escape that starts an escape (not preceded by an odd number of backslashes).
_UNICODE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _content_type(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bytes(value).lower()
    return b""


def json_text_problem(body: bytes) -> str | None:
    """What makes a JSON body's text ill-formed (invalid UTF-8, an unpaired surrogate), or None."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"the body is not valid UTF-8 (byte {exc.start}); send JSON encoded as UTF-8"
    if b"\\u" not in body:
        return None
    expect_low_at = -1
    for match in _UNICODE_ESCAPE.finditer(body):
        code = int(match.group(1), 16)
        escape_start = match.end() - 6
        if expect_low_at >= 0 and (escape_start != expect_low_at or not 0xDC00 <= code <= 0xDFFF):
            return f"unpaired surrogate escape before byte {expect_low_at} of the body; send valid text"
        if 0xD800 <= code <= 0xDBFF:
            expect_low_at = match.end()
        elif 0xDC00 <= code <= 0xDFFF and expect_low_at < 0:
            return f"unpaired surrogate escape \\u{code:04x} at byte {escape_start} of the body; send valid text"
        else:
            expect_low_at = -1
    if expect_low_at >= 0:
        return f"unpaired surrogate escape before byte {expect_low_at} of the body; send valid text"
    return None


def _looks_like_json(body: bytes, content_type: bytes) -> bool:
    if content_type.startswith(b"multipart/"):
        return False
    return body.lstrip()[:1] in (b"{", b"[", b'"')


class RequestBodyGuard:
    """Reads request bodies up to ``max_bytes`` (413 beyond) and checks JSON text before the app sees it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, f"{declared:,} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {self.max_bytes:,} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if body and _looks_like_json(body, _content_type(scope)):
            problem = json_text_problem(body)
            if problem is not None:
                response = error_response(Request(scope), 400, "invalid_text", problem)
                await response(scope, receive, send)
                return
        await self.app(scope, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        detail = (
            f"the request body is {size}; the limit is {self.max_bytes:,} bytes (limits.max_request_bytes). "
            "Send less data per request"
        )
        response = error_response(Request(scope), 413, "payload_too_large", detail, headers={"Connection": "close"})
        await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A receive that gives ``messages`` first, then the real ones (so disconnects are still seen)."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
