"""``GET /metrics`` (Prometheus text format) and the HTTP request measurements, as ASGI middleware: by route
template (``/api/v1/get_model_info/{binding_instance_name}``, never the raw path, so labels stay bounded),
method and status; the latency is to the end of the response, streams included. Requests no route answered
(refused before routing, unknown paths) are labelled by their API (``/v1/*``), so labels stay bounded."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lollms_server.core.metrics import ServerMetrics

router = APIRouter(include_in_schema=False)


class LabelledRoute(Route):
    """A plain Starlette route that, like FastAPI's, puts itself in the scope: requests are labelled by its
    template."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    server_metrics: ServerMetrics = request.app.state.metrics
    return Response(server_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


# Requests answered before routing (refused by a limit or the key check) or by no route: labelled by their API.
UNROUTED = (("/api/v1/", "/api/v1/*"), ("/api/", "/api/*"), ("/v1/", "/v1/*"), ("/lollms/", "/lollms/*"))


def unrouted_label(path: str) -> str:
    return next((label for prefix, label in UNROUTED if path.startswith(prefix)), "other")


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def measured_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, measured_send)
        finally:
            template = getattr(scope.get("route"), "path", None) or unrouted_label(scope["path"])
            self.metrics.observe_http(template, scope["method"], status, time.perf_counter() - started)
