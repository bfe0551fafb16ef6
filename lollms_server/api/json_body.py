"""Request bodies of the APIs are JSON whatever their declared type, as Ollama and OpenAI read them.

Clients such as litellm's Ollama provider send JSON with no Content-Type, or as ``text/plain`` or a form
type; FastAPI parses a body only when it is declared as JSON. This middleware declares it so for every API
route (the lollms, OpenAI- and Ollama-compatible ones), before routing, so routes added later are covered.

Two exceptions. Multipart bodies (file uploads) keep their type. Browsers keep FastAPI's strict check: a
page may send ``text/plain`` to another site without a CORS preflight, so a request that carries an
``Origin`` must declare JSON (415 otherwise); that keeps a server running without a key safe from pages
the user visits (cross-site request forgery).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lollms_server.api.auth import PROTECTED_PREFIXES
from lollms_server.api.errors import error_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_CONTENT_TYPE = b"content-type"
_ORIGIN = b"origin"
_JSON = (_CONTENT_TYPE, b"application/json")


def declares_json(content_type: bytes) -> bool:
    """application/json or a JSON-based type (application/*+json), whatever its parameters."""
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (media_type[:12] == b"application/" and media_type[-5:] == b"+json")


class JsonBodyMiddleware:
    """Gives API requests whose body is not declared as JSON (nor multipart) the type application/json."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = PROTECTED_PREFIXES) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        outside = scope["type"] != "http" or scope["method"] not in _BODY_METHODS
        if outside or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        content_type = b""
        from_browser = False
        for name, value in scope["headers"]:
            if name == _CONTENT_TYPE:
                content_type = value
            elif name == _ORIGIN:
                from_browser = True
        if declares_json(content_type) or content_type[:10].lower() == b"multipart/":
            await self.app(scope, receive, send)
            return
        if from_browser:
            declared = content_type[:100].decode("latin-1") or "no Content-Type"
            detail = f"send the body as JSON with Content-Type: application/json (this request declares {declared})"
            await error_response(Request(scope), 415, "unsupported_media_type", detail)(scope, receive, send)
            return
        headers = [(name, value) for name, value in scope["headers"] if name != _CONTENT_TYPE]
        await self.app({**scope, "headers": [*headers, _JSON]}, receive, send)
