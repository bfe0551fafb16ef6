"""Routes of the Anthropic Messages API: POST /v1/messages (JSON or SSE) and /v1/messages/count_tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lollms_server.api.anthropic_compat.protocol import AnthropicErrorResponse, CountTokensRequest, MessagesRequest
from lollms_server.api.anthropic_compat.translate import (
    anthropic_error_event,
    message_events,
    message_object,
    messages_request,
)
from lollms_server.api.deps import BindingManagerDep, GenerationServiceDep
from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import keepalive_seconds, run_to_completion, start_stream
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.openapi import GENERATION_ERRORS, documented_errors
from lollms_server.api.streaming import EventStreamResponse, sse_events
from lollms_server.api.wire_fields import log_ignored, unknown_fields
from lollms_server.core.errors import CapabilityError

router = APIRouter(prefix="/v1", tags=["anthropic-compatible"])
_NOT_ANTHROPIC = "not part of the Anthropic API this server implements"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return documented_errors(AnthropicErrorResponse, *statuses)


@router.post("/messages", summary="Anthropic Messages (stream: true for SSE)", responses=errors(*GENERATION_ERRORS))
async def messages(
    body: MessagesRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> Response:
    request_id = request_id_of(request) or ""
    log_ignored("Anthropic", request_id, unknown_fields(body), _NOT_ANTHROPIC)
    ours = messages_request(body, bindings.model_ids, stream=body.stream)
    if body.stream:
        stream = await start_stream(
            request, service, ours, request_id, transform=lambda events: message_events(events, request_id, body.model)
        )
        events = sse_events(
            stream.pump,
            keepalive_seconds=keepalive_seconds(service),
            request_id=request_id,
            error_event=anthropic_error_event,
            named_events=True,
        )
        return EventStreamResponse(events, on_close=stream.close)
    _, outputs = await run_to_completion(request, service, ours, request_id)
    return JsonResponse(message_object(request_id, body.model, outputs))


@router.post("/messages/count_tokens", summary="Tokens of a Messages request", responses=errors(400, 404, 501))
async def count_tokens(
    body: CountTokensRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> dict[str, int]:
    request_id = request_id_of(request) or ""
    ours = messages_request(body, bindings.model_ids)
    prepared = await until_disconnect(request, service.prepare(ours, request_id))
    if prepared.prompt_tokens is None:
        raise CapabilityError(f"binding '{prepared.binding_name}' cannot count tokens")
    return {"input_tokens": prepared.prompt_tokens}
