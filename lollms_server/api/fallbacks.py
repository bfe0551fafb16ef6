"""Answers for requests no route serves: an unknown endpoint (404), a wrong method (405), or a path that a route
serves without its trailing slash (or with one): a redirect there.

They go through the error table like every other error, so each API answers in its own shape (OpenAI's under
/v1, Ollama's under /api, ours under /api/v1) and names what it does not support. The redirect is Starlette's
``redirect_slashes``, with a relative Location: Starlette's is absolute, built from the request's Host header,
which the client chooses.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from lollms_server.api.errors import error_response
from lollms_server.api.webui import page_for

# Longest first: /api/v1/ is ours, the rest of /api/ is Ollama's.
_API_OF_PREFIX = (
    ("/api/v1/", "the lollms API"),
    ("/api/", "the Ollama-compatible API"),
    ("/v1/", "the OpenAI-compatible API"),
    ("/lollms/", "the lollms_client helpers"),
)
_SHOWN_PATH = 200


def api_of(path: str) -> str | None:
    """Which of the server's APIs a path belongs to, by its prefix."""
    return next((api for prefix, api in _API_OF_PREFIX if path.startswith(prefix)), None)


def _endpoint(request: Request) -> str:
    return f"{request.method} {request.url.path[:_SHOWN_PATH]}"


def slash_redirect(routes: list[BaseRoute], scope: Scope) -> str | None:
    """Where a path no route serves is served with its trailing slashes removed (or with one added): that path,
    relative, with the query; None when no route serves it there either."""
    path = scope["path"]
    other = path.rstrip("/") if path.endswith("/") else f"{path}/"
    if not other.startswith("/") or other[1:2] in ("/", "\\"):  # "//host" or "/\host": another site to a browser
        return None
    moved = {**scope, "path": other}
    if not any(route.matches(moved)[0] is not Match.NONE for route in routes):
        return None
    query = scope.get("query_string", b"")
    return f"{other}?{query.decode('latin-1')}" if query else other


def unknown_endpoint_router(fallback: ASGIApp, routes: list[BaseRoute] | None = None) -> ASGIApp:
    """The router's answer when no route matches an HTTP request: a redirect to where one of ``routes`` serves it
    (see ``slash_redirect``), else a web UI page or a 404; ``fallback`` keeps websockets as they were."""

    async def unknown_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await fallback(scope, receive, send)
            return
        location = slash_redirect(routes, scope) if routes is not None and scope["path"] != "/" else None
        if location is not None:
            await RedirectResponse(location)(scope, receive, send)
            return
        dist = getattr(scope["app"].state, "spa_dist", None) if "app" in scope else None
        page = page_for(dist, scope) if dist is not None else None
        if page is not None:  # a browser page of the web UI
            await page(scope, receive, send)
            return
        path = scope["path"]
        api = api_of(path)
        where = f"{api} of this server" if api else "this server"
        endpoint = f"{scope['method']} {path[:_SHOWN_PATH]}"
        detail = f"{endpoint} is not supported by {where}; /docs lists the endpoints it serves"
        raise HTTPException(status_code=404, detail=detail)

    return unknown_endpoint


async def method_not_allowed(request: Request, exc: Exception) -> Response:
    """405 from the router, with the methods the endpoint accepts (also in the Allow header)."""
    headers = getattr(exc, "headers", None) or {}
    allowed = headers.get("Allow", "")
    detail = f"{_endpoint(request)}: method not allowed; this endpoint accepts {allowed or 'other methods'}"
    response: JSONResponse = error_response(request, 405, "method_not_allowed", detail, headers=headers)
    return response


def install_fallbacks(app: FastAPI) -> None:
    """Unknown endpoints and wrong methods answer in the shape of the API their path belongs to."""
    app.router.redirect_slashes = False  # done by unknown_endpoint, without the Host header
    app.router.default = unknown_endpoint_router(app.router.default, app.router.routes)
    app.add_exception_handler(405, method_not_allowed)
