"""``POST /api/v1/generate``: JSON or SSE over the one generation pipeline.

The busiest route is a plain Starlette route: it parses its body with pydantic itself and skips
FastAPI's per-route dependency machinery, which cost more than the whole generation pipeline
(bench/README.md). ``api/openapi.py`` documents it like the other routes.
"""

from __future__ import annotations

import time

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from lollms_server.api.auth import PROTECTED_PREFIX
from lollms_server.api.deps import get_generation_service
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import keepalive_seconds, run_to_completion, start_stream
from lollms_server.api.metrics import LabelledRoute
from lollms_server.api.models import GenerateRequest, GenerateResponse
from lollms_server.api.streaming import EventStreamResponse, sse_events
from lollms_server.core.events import stream_chunk

GENERATE_PATH = f"{PROTECTED_PREFIX}/generate"


async def read_generate_request(request: Request) -> GenerateRequest:
    try:
        return GenerateRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


async def generate(request: Request) -> Response:
    started = time.perf_counter()
    body = (await read_generate_request(request)).to_domain()
    service = await get_generation_service(request)
    request_id = request_id_of(request) or ""
    if body.stream:
        stream = await start_stream(request, service, body, request_id)
        events = sse_events(
            stream.pump, keepalive_seconds=keepalive_seconds(service), request_id=request_id, to_wire=stream_chunk
        )
        return EventStreamResponse(events, on_close=stream.close)
    prepared, outputs = await run_to_completion(request, service, body, request_id)
    response = GenerateResponse(
        personality=prepared.personality,
        request_id=request_id,
        output=outputs,
        execution_time=round(time.perf_counter() - started, 4),
    )
    return Response(response.model_dump_json(), media_type="application/json")


routes = [LabelledRoute(GENERATE_PATH, generate, methods=["POST"])]
