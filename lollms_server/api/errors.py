"""One table from our exceptions to HTTP statuses, one error body, request ids on every response."""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lollms_server.api.disconnect import ClientGone
from lollms_server.api.error_shapes import shapes_of
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.models import ErrorResponse
from lollms_server.core.errors import (
    BackendAuthError,
    BackendFailedError,
    BackendLoopError,
    BackendRateLimitError,
    BackendTimeoutError,
    BackendUnreachableError,
    BadRequestError,
    CapabilityError,
    ConfigError,
    ForbiddenError,
    LollmsError,
    NotFoundError,
    PayloadTooLargeError,
    QueueFullError,
    QueueTimeoutError,
    RateLimitedError,
    RelayLoopError,
    UnavailableError,
)
from lollms_server.core.metrics import ServerMetrics

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"

# (status, code) per exception class; the first matching class in the MRO wins.
STATUS_FOR_ERROR: dict[type[LollmsError], tuple[int, str]] = {
    BackendAuthError: (502, "backend_unauthorized"),
    BackendRateLimitError: (429, "backend_rate_limited"),
    BackendFailedError: (502, "backend_error"),
    BackendLoopError: (508, "loop_detected"),
    RelayLoopError: (508, "loop_detected"),
    BackendUnreachableError: (503, "backend_unreachable"),
    BackendTimeoutError: (504, "backend_timeout"),
    BadRequestError: (400, "bad_request"),
    ForbiddenError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    QueueTimeoutError: (408, "queue_timeout"),
    RateLimitedError: (429, "rate_limited"),
    QueueFullError: (503, "queue_full"),
    PayloadTooLargeError: (413, "payload_too_large"),
    CapabilityError: (501, "not_implemented"),
    UnavailableError: (503, "unavailable"),
    ConfigError: (503, "configuration_error"),
}
_CODE_FOR_HTTP_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    503: "unavailable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorResponse} for status in (401, 403, *statuses)}


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")  # without building a State
    return request_id


def error_response(
    request: Request,
    status: int,
    code: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    shape = shapes_of(request.scope).for_path(request.url.path)  # the API's own shape (error_shapes.py)
    body = shape.body(status, code, detail, request_id_of(request), errors)
    return JsonResponse(body, status_code=status, headers=headers)


def status_for(exc: LollmsError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[cls]
    return 500, "internal_error"


async def _lollms_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = status_for(cast(LollmsError, exc))
    if status == 500:
        return await _unexpected_error(request, exc)
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(math.ceil(retry_after))} if retry_after else None
    return error_response(request, status, code, str(exc), headers=headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code = _CODE_FOR_HTTP_STATUS.get(exc.status_code, "http_error")
    return error_response(request, exc.status_code, code, str(exc.detail), headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    # Only where and what: the offending input is not echoed back.
    errors = [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in errors[:5])
    not_json = next((error for error in exc.errors() if error.get("type") == "json_invalid"), None)
    if not_json is not None:
        reason = (not_json.get("ctx") or {}).get("error") or not_json.get("msg", "")
        detail = f"the request body must be JSON ({reason})"
        return error_response(request, 422, "invalid_json", detail, errors=errors)
    return error_response(request, 422, "validation_error", f"invalid request: {summary}", errors=errors)


async def _client_gone(request: Request, exc: Exception) -> Response:
    # Nobody reads this; 499 (nginx's "client closed request") keeps access logs honest.
    return Response(status_code=499)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_of(request)
    logger.error("Unhandled error in request %s (%s %s)", request_id, request.method, request.url.path, exc_info=exc)
    # This response is sent by Starlette's outermost error middleware, outside RequestIdMiddleware.
    return error_response(
        request,
        500,
        "internal_error",
        f"internal server error; quote request id {request_id} when reporting it",
        headers={REQUEST_ID_HEADER: request_id or ""},
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LollmsError, _lollms_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientGone, _client_gone)
    app.add_exception_handler(Exception, _unexpected_error)


class RequestIdMiddleware:
    """Gives every HTTP request an id (``request.state.request_id``) and returns it as X-Request-ID; with
    ``metrics``, also counts the request by route, method and status and times it to the end of its response
    (here rather than in a layer of its own: one wrapper of ``send`` serves both)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        header = (REQUEST_ID_HEADER.lower().encode("latin-1"), request_id.encode("latin-1"))
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
                status = message["status"]
            await send(message)

        if self.metrics is None:
            await self.app(scope, receive, send_with_id)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            template = getattr(scope.get("route"), "path", None) or unrouted_label(scope["path"])
            self.metrics.observe_http(template, scope["method"], status, time.perf_counter() - started)


# Requests answered before routing (refused by a limit or the key check) or by no route: labelled by their API.
UNROUTED = (("/api/v1/", "/api/v1/*"), ("/api/", "/api/*"), ("/v1/", "/v1/*"), ("/lollms/", "/lollms/*"))


def unrouted_label(path: str) -> str:
    return next((label for prefix, label in UNROUTED if path.startswith(prefix)), "other")
