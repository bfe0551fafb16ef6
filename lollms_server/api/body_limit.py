"""Request bodies at the edge: bounded in size before they are read, refused when their JSON text is not
well-formed Unicode, and declared as JSON for the API routes (``api/json_body.py``) — one layer for every route
and every API, ahead of any parsing.

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
from lollms_server.api.json_body import CONTENT_TYPE, NotJsonError, as_json_request

_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # routes never read a body here
# A \uXXXX escape that starts an escape (not preceded by an odd number of backslashes).
_UNICODE_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u([0-9a-fA-F]{4})")


_CONTENT_LENGTH = b"content-length"
_ORIGIN = b"origin"


def _body_headers(scope: Scope) -> tuple[int | None, bytes, bool]:
    """The declared length (None when absent or not a number), the content type, whether an Origin was sent."""
    length: int | None = None
    content_type = b""
    from_browser = False
    for name, value in scope["headers"]:
        if name == _CONTENT_LENGTH:
            length = int(value) if value.isdigit() else None
        elif name == CONTENT_TYPE:
            content_type = bytes(value)
        elif name == _ORIGIN:
            from_browser = True
    return length, content_type, from_browser


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
    if content_type[:10].lower() == b"multipart/":
        return False
    return body.lstrip()[:1] in (b"{", b"[", b'"')


class RequestBodyGuard:
    """Reads request bodies up to ``max_bytes`` (413 beyond), checks JSON text and declares API bodies as JSON
    before the app sees them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        declared, content_type, from_browser = _body_headers(scope)
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
        if body and _looks_like_json(body, content_type):
            problem = json_text_problem(body)
            if problem is not None:
                await error_response(Request(scope), 400, "invalid_text", problem)(scope, receive, send)
                return
        try:
            routed = as_json_request(scope, content_type, from_browser)
        except NotJsonError as exc:
            await error_response(Request(scope), 415, "unsupported_media_type", str(exc))(scope, receive, send)
            return
        await self.app(routed, _replay([{"type": "http.request", "body": body, "more_body": False}], receive), send)

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
