"""``GET /metrics`` (Prometheus text format; admin keys only, unless ``metrics.public``), and the route that labels
plain Starlette routes by their template.

HTTP requests are measured by ``RequestIdMiddleware`` (errors.py): by route template
(``/api/v1/get_model_info/{binding_instance_name}``, never the raw path), method and status, to the end of the
response, streams included; requests no route answered are labelled by their API (``/v1/*``)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Match, Route
from starlette.types import Scope

from lollms_server.api.errors import error_response
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


METRICS_PATH = "/metrics"  # protected like the API unless metrics.public


@router.get(METRICS_PATH)
async def metrics(request: Request) -> Response:
    # Every key's name and every instance are in it: admin keys only, unless metrics.public (no key asked at all).
    principal = getattr(request.state, "principal", None)
    if principal is not None and not principal.is_admin:
        return error_response(request, 403, "forbidden", "/metrics is for admin keys (or set metrics.public)")
    server_metrics: ServerMetrics = request.app.state.metrics
    return Response(server_metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
