"""``GET /``: where to go from here (the docs, the health check, the API bases) until the web UI is served there.

Browsers get a tiny HTML page (no script, a CSP that forbids any); other clients get JSON. The web UI
replaces this router: ``create_app`` includes it in one line.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from lollms_server import __version__
from lollms_server.api.json_response import JsonResponse

router = APIRouter(include_in_schema=False)
_NO_SCRIPTS = {"Content-Security-Policy": "default-src 'none'", "X-Content-Type-Options": "nosniff"}
APIS = {"lollms": "/api/v1", "openai": "/v1", "ollama": "/api"}


def links(request: Request) -> dict[str, Any]:
    found: dict[str, Any] = {"name": "lollms_server", "version": __version__, "health": "/health"}
    if request.app.docs_url:
        found["docs"] = request.app.docs_url
    if request.app.openapi_url:
        found["openapi"] = request.app.openapi_url
    found["apis"] = APIS
    return found


def page(found: dict[str, Any]) -> str:
    items = "".join(
        f'<li><a href="{escape(found[key])}">{escape(label)}</a></li>'
        for key, label in (("docs", "API documentation"), ("health", "Health"), ("openapi", "OpenAPI schema"))
        if key in found
    )
    bases = "".join(f"<li>{escape(name)}: <code>{escape(base)}</code></li>" for name, base in found["apis"].items())
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>lollms_server</title></head><body>'
        f"<h1>lollms_server {escape(found['version'])}</h1><ul>{items}</ul><p>API bases:</p><ul>{bases}</ul>"
        "</body></html>"
    )


@router.get("/")
async def root(request: Request) -> Response:
    found = links(request)
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(page(found), headers=_NO_SCRIPTS)
    return JsonResponse(found)
