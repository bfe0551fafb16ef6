"""API key authentication for every ``/api/v1`` route, as ASGI middleware.

Checking the path prefix here, before routing, covers every route under the prefix, including ones
added later or hidden from the OpenAPI schema, and costs far less than a per-route dependency.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lollms_server.api.errors import error_response
from lollms_server.core.security import ApiKeyVerifier

API_KEY_HEADER = "X-API-Key"
PROTECTED_PREFIX = "/api/v1"
_HEADER_NAME = API_KEY_HEADER.lower().encode("latin-1")


class ApiKeyMiddleware:
    """403 without a key, 401 with a wrong one (spec "Authentication"); a no-op when auth is disabled."""

    def __init__(self, app: ASGIApp, verifier: ApiKeyVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.verifier.required or not scope["path"].startswith(PROTECTED_PREFIX):
            await self.app(scope, receive, send)
            return
        presented = next((value for name, value in scope["headers"] if name == _HEADER_NAME), None)
        if presented and self.verifier.is_valid(presented.decode("latin-1")):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if presented:
            response = error_response(request, 401, "unauthorized", "invalid API key")
        else:
            detail = f"missing API key: send it in the {API_KEY_HEADER} header"
            response = error_response(request, 403, "forbidden", detail)
        await response(scope, receive, send)
