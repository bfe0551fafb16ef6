"""CORS for browsers only: Starlette's middleware, skipped for requests that carry no Origin header."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

_ORIGIN = b"origin"


class BrowserCORSMiddleware:
    """API clients (SDKs, curl, servers) send no Origin: they skip the CORS work on every response.

    Responses then lack ``Vary: Origin``; the only cacheable ones (personality icons) set it themselves.
    """

    def __init__(self, app: ASGIApp, allow_origins: Sequence[str], expose_headers: Sequence[str]) -> None:
        self.app = app
        # Keys travel in headers, never cookies, so credentials stay off: no origin ever gets them.
        self.cors = CORSMiddleware(
            app,
            allow_origins=allow_origins,
            allow_credentials=False,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=expose_headers,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and any(name == _ORIGIN for name, _ in scope["headers"]):
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
