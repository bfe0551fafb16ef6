"""The built web UI (``webui/dist`` from ``npm run build``, or the copy inside an installed wheel) served at
``/`` when ``webui.enable_ui`` is true.

- ``/assets/*`` (names with content hashes) are cached for a year, immutable;
- a GET no route serves, from a browser asking for HTML, gets ``index.html`` (the app routes in the browser), so
  a reload on ``/status`` works — never under the API prefixes, the docs or the health check, which keep their
  own 404s in their API's shape (the unknown-endpoint fallback decides, so no route shadows anything);
- every UI response carries a Content-Security-Policy without inline scripts.

Without a built UI the root page says how to build it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.types import Scope

from lollms_server.api import root

# A wheel ships the build inside the package (setup.py); a checkout serves webui/dist, built by run.sh.
PACKAGED_DIST = Path(__file__).resolve().parents[1] / "webui_dist"
CHECKOUT_DIST = Path(__file__).resolve().parents[2] / "webui" / "dist"
RESERVED_PREFIXES = ("/api/", "/v1/", "/lollms/", "/docs", "/redoc", "/openapi.json", "/health", "/version")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
ASSET_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=31536000, immutable"}


def built_ui(dist: Path) -> Path | None:
    """The folder of the built UI, when it has been built."""
    return dist if (dist / "index.html").is_file() else None


def _inside(folder: Path, relative: str) -> Path | None:
    """``folder/relative`` when it is a file inside ``folder`` (no way out through ``..`` or links)."""
    try:
        target = (folder / relative).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # ValueError: a NUL byte in the name
        return None
    return target if target.is_file() and target.is_relative_to(folder.resolve()) else None


def ui_router(dist: Path) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    index = dist / "index.html"

    @router.get("/")
    async def home(request: Request) -> Response:
        if "text/html" not in request.headers.get("accept", ""):
            return await root.root(request)  # API clients keep the JSON of where things are
        return FileResponse(index, media_type="text/html", headers=PAGE_HEADERS)

    @router.get("/assets/{name:path}")
    async def asset(name: str) -> Response:
        found = _inside(dist / "assets", name)
        if found is None:
            return Response(status_code=404, headers={"X-Content-Type-Options": "nosniff"})
        return FileResponse(found, headers=ASSET_HEADERS)

    return router


def page_for(dist: Path, scope: Scope) -> Response | None:
    """For a path no route serves: ``index.html`` (the app routes in the browser) or a top-level file of the
    build (favicon.ico...) when a browser GETs a page outside the server's APIs; None otherwise."""
    path = scope["path"]
    headers = dict(scope["headers"])
    if (
        scope["method"] != "GET"
        or "\x00" in path  # never a page of the app: the unknown-endpoint 404
        or path.startswith(RESERVED_PREFIXES)
        or b"text/html" not in headers.get(b"accept", b"")
    ):
        return None
    name = path.lstrip("/")
    found = _inside(dist, name) if name and "/" not in name else None
    if found is not None and found.name != "index.html":
        return FileResponse(found, headers={**ASSET_HEADERS, "Cache-Control": "public, max-age=3600"})
    return FileResponse(dist / "index.html", media_type="text/html", headers=PAGE_HEADERS)


def not_built_page() -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lollms_server</title></head><body>'
        "<h1>The web UI is not built</h1><p>Run <code>./run.sh</code> (it builds it), or "
        "<code>cd webui &amp;&amp; npm ci &amp;&amp; npm run build</code>. The API works meanwhile: "
        '<a href="/docs">API documentation</a>.</p></body></html>',
        headers={"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"},
    )


def install_ui(app: FastAPI, enabled: bool, dist: Path | None = None) -> None:
    """The UI at ``/`` when enabled and built; else the root page (with a note when enabled but not built)."""
    built = built_ui(dist or (PACKAGED_DIST if built_ui(PACKAGED_DIST) else CHECKOUT_DIST)) if enabled else None
    if built is not None:
        app.include_router(ui_router(built))
        app.state.spa_dist = built  # the unknown-endpoint fallback serves the app's pages (fallbacks.py)
        return
    if enabled:

        @app.get("/", include_in_schema=False)
        async def home(request: Request) -> Response:
            if "text/html" in request.headers.get("accept", ""):
                return not_built_page()
            return await root.root(request)

        return
    app.include_router(root.router)
