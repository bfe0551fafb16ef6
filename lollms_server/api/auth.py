"""API key authentication of every API route (lollms, OpenAI- and Ollama-compatible), as ASGI middleware.

Checking path prefixes here, before routing, covers every route under them, including ones added later
or hidden from the OpenAPI schema, and costs far less than a per-route dependency. The key may come in
``X-API-Key`` or as ``Authorization: Bearer <key>`` (what OpenAI and Ollama clients send).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lollms_server.api.errors import error_response
from lollms_server.core.api_keys import ANONYMOUS, ApiKeyVerifier, Principal, current_principal

if TYPE_CHECKING:
    from lollms_server.api.quota import Limiter  # the limits it applies once it knows the key (quota imports no auth)

API_KEY_HEADER = "X-API-Key"
PROTECTED_PREFIX = "/api/v1"
# /api/ holds our /api/v1 and the Ollama-compatible API; /v1/ the OpenAI-compatible one; /lollms/ the
# helpers of lollms_client. /health, /version and the docs stay public.
PROTECTED_PREFIXES = ("/api/", "/v1/", "/lollms/")
_HEADER_NAME = API_KEY_HEADER.lower().encode("latin-1")
_AUTHORIZATION = b"authorization"
_BEARER = b"bearer "


def presented_key(scope: Scope) -> bytes | None:
    """The key a request carries, from X-API-Key or an Authorization: Bearer header."""
    for name, value in scope["headers"]:
        if name == _HEADER_NAME and value:
            return bytes(value)
        if name == _AUTHORIZATION and value[:7].lower() == _BEARER:
            return bytes(value[7:].strip()) or None
    return None


class ApiKeyMiddleware:
    """403 without a key, 401 with a wrong or expired one (spec "Authentication"). The caller's identity (its
    ``Principal``) goes into the scope's state and ``current_principal`` for limits, checks and usage; with
    authentication disabled everyone is ``ANONYMOUS``."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: ApiKeyVerifier,
        prefixes: tuple[str, ...] = PROTECTED_PREFIXES,
        limiter: Limiter | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.prefixes = prefixes
        self.limiter = limiter  # per-key limits, applied once the caller is known

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        if not self.verifier.required:
            await self._as(ANONYMOUS, scope, receive, send)
            return
        presented = presented_key(scope)
        principal = self.verifier.identify(presented.decode("latin-1")) if presented else None
        if principal is not None and not principal.expired():
            await self._as(principal, scope, receive, send)
            return
        request = Request(scope)
        if principal is not None:
            response = error_response(request, 401, "unauthorized", f"the API key '{principal.name}' has expired")
        elif presented:
            response = error_response(request, 401, "unauthorized", "invalid API key")
        else:
            detail = f"missing API key: send it in the {API_KEY_HEADER} header or as Authorization: Bearer <key>"
            response = error_response(request, 403, "forbidden", detail)
        await response(scope, receive, send)

    async def _as(self, principal: Principal, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("state", {})["principal"] = principal
        token = current_principal.set(principal)
        try:
            if self.limiter is None:
                await self.app(scope, receive, send)
            else:
                await self.limiter.run(self.app, principal, scope, receive, send)
        finally:
            current_principal.reset(token)
