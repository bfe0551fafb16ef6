"""``POST /api/v1/generate``: JSON or SSE over the one generation pipeline."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response

from lollms_server.api.deps import ConfigDep, GenerationServiceDep, protected_router
from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.errors import error_responses, request_id_of
from lollms_server.api.models import GenerateRequest, GenerateResponse
from lollms_server.api.streaming import EventStreamResponse, sse_events

router = protected_router()


@router.post(
    "/generate",
    response_model=GenerateResponse,
    summary="Generate (set stream: true for Server-Sent Events)",
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
        **error_responses(400, 404, 408, 422, 501, 503),
    },
)
async def generate(
    body: GenerateRequest, request: Request, service: GenerationServiceDep, config: ConfigDep
) -> Response:
    started = time.perf_counter()
    request_id = request_id_of(request) or ""
    prepared = await until_disconnect(request, service.prepare(body, request_id))
    if body.stream:
        slot = await until_disconnect(request, service.admit(prepared))
        events = sse_events(
            service.stream(prepared, slot),
            keepalive_seconds=float(config.section("server")["sse_keepalive_interval"]),
            request_id=request_id,
        )
        return EventStreamResponse(events, on_close=slot.release if slot else None)
    outputs = await until_disconnect(request, service.run(prepared))
    response = GenerateResponse(
        personality=prepared.personality,
        request_id=request_id,
        output=outputs,
        execution_time=round(time.perf_counter() - started, 4),
    )
    return Response(response.model_dump_json(), media_type="application/json")
