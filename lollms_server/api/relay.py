"""Relay loops (``core.relay``) at the edge: every request's relay path checked before anything else runs, and the
server's own work (the lifespan) marked with its id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from lollms_server.api.errors import error_response, status_for
from lollms_server.core.errors import LollmsError
from lollms_server.core.relay import RELAY_HEADER, RelayGuard

_HEADER = RELAY_HEADER.lower().encode("latin-1")

Lifespan = Callable[[Any], AbstractAsyncContextManager[None]]


class RelayLoopMiddleware:
    """508 for a request that has come back to this server (or passed through too many), 400 for a malformed relay
    header; the others run with their relay path set for the requests they send to backends."""

    def __init__(self, app: ASGIApp, guard: RelayGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            passed = self.guard.passed(value.decode("latin-1") for name, value in scope["headers"] if name == _HEADER)
        except LollmsError as exc:
            status, code = status_for(exc)
            await error_response(Request(scope), status, code, str(exc))(scope, receive, send)
            return
        token = self.guard.enter(passed)
        try:
            await self.app(scope, receive, send)
        finally:
            self.guard.leave(token)


def relaying_lifespan(lifespan: Lifespan, guard: RelayGuard) -> Lifespan:
    """``lifespan`` with the server's own work (start-up and background health checks) sending its id."""

    @asynccontextmanager
    async def marked(app: Any) -> AsyncIterator[None]:
        token = guard.enter(())
        try:
            async with lifespan(app):
                yield
        finally:
            guard.leave(token)

    return marked
