"""Routes of the OpenAI-compatible API: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings, and
the images API (image_routes: /v1/images/generations, /v1/images/edits)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from lollms_server.api.deps import BindingManagerDep, EmbeddingServiceDep, GenerationServiceDep
from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import keepalive_seconds, run_to_completion, start_stream
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.models import InputData
from lollms_server.api.openai_compat import audio_routes, image_routes
from lollms_server.api.openai_compat.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    OpenAIErrorResponse,
    SamplingFields,
)
from lollms_server.api.openai_compat.translate import (
    chat_chunks,
    chat_completion,
    chat_request,
    encode_embedding,
    generate_request,
    openai_error_event,
    refuse_unsupported,
    text_completion,
)
from lollms_server.api.openapi import EMBEDDING_ERRORS, GENERATION_ERRORS, documented_errors
from lollms_server.api.streaming import EventStreamResponse, sse_events
from lollms_server.api.wire_fields import log_ignored, unknown_fields
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.generation import GenerationService
from lollms_server.core.model_ids import alias_entries, check_model_id, list_model_ids, personality_model_ids

router = APIRouter(prefix="/v1", tags=["openai-compatible"])
DONE = b"data: [DONE]\n\n"
_NOT_OPENAI = "not part of the OpenAI API this server implements"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return documented_errors(OpenAIErrorResponse, *statuses)


def log_unknown_fields(request: Request, body: BaseModel) -> None:
    log_ignored("OpenAI", request_id_of(request) or "", unknown_fields(body), _NOT_OPENAI)


async def model_objects(request: Request, bindings: BindingManager) -> list[dict[str, Any]]:
    """OpenAI model objects: every binding model, then every available personality."""
    models = [
        {"id": entry["id"], "object": "model", "created": 0, "owned_by": entry["binding"]}
        for entry in await list_model_ids(bindings)
    ]
    personalities = getattr(request.app.state, "personality_manager", None)
    models += [
        {"id": model_id, "object": "model", "created": 0, "owned_by": "personality"}
        for model_id in personality_model_ids(personalities)
    ]
    models += [
        {"id": entry["id"], "object": "model", "created": 0, "owned_by": "alias", "alias_of": entry["alias_of"]}
        for entry in await alias_entries(bindings)
    ]
    return models


@router.get(
    "/models", summary="Models: '<instance>/<model>', '<instance>' and 'personality/<id>'", responses=errors(500, 503)
)
async def list_models(request: Request, bindings: BindingManagerDep) -> dict[str, Any]:
    return {"object": "list", "data": await model_objects(request, bindings)}


@router.get("/models/{model_id:path}", summary="One model", responses=errors(403, 404, 500, 503))
async def retrieve_model(model_id: str, request: Request, bindings: BindingManagerDep) -> dict[str, Any]:
    for model in await model_objects(request, bindings):
        if model["id"] == model_id:
            return model
    check_model_id(bindings.model_ids.parse(model_id))  # not listed: 403 if the key may not use it anyway
    raise NotFoundError(f"model '{model_id}' not found")


async def _answer(
    request: Request, service: GenerationService, ours: GenerationRequest, wire: SamplingFields, chat: bool
) -> Response:
    request_id = request_id_of(request) or ""
    raw_prompt = not chat
    if ours.stream:
        include_usage = bool((wire.stream_options or {}).get("include_usage"))
        stream = await start_stream(
            request,
            service,
            ours,
            request_id,
            raw_prompt,
            transform=lambda chunks: chat_chunks(chunks, request_id, wire.model, include_usage, chat),
        )
        events = sse_events(
            stream.pump,
            keepalive_seconds=keepalive_seconds(service),
            request_id=request_id,
            error_event=openai_error_event,
            done_marker=DONE,
        )
        return EventStreamResponse(events, on_close=stream.close)
    _, outputs = await run_to_completion(request, service, ours, request_id, raw_prompt)
    answer = chat_completion if chat else text_completion
    return JsonResponse(answer(request_id, wire.model, outputs))


@router.post(
    "/chat/completions", summary="Chat completion (stream: true for SSE)", responses=errors(*GENERATION_ERRORS)
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> Response:
    log_unknown_fields(request, body)
    return await _answer(request, service, chat_request(body, bindings.model_ids), body, chat=True)


@router.post(
    "/completions", summary="Text completion of a prompt (stream: true for SSE)", responses=errors(*GENERATION_ERRORS)
)
async def completions(
    body: CompletionRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> Response:
    log_unknown_fields(request, body)
    refuse_unsupported(body)
    prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if len(prompts) != 1:
        raise BadRequestError("send one prompt per request")
    items = [InputData(type="text", role="user_prompt", data=prompts[0])]
    return await _answer(request, service, generate_request(body, items, bindings.model_ids, {}), body, chat=False)


@router.post("/embeddings", summary="Embeddings of one or more texts", responses=errors(*EMBEDDING_ERRORS))
async def embeddings(body: EmbeddingRequest, request: Request, service: EmbeddingServiceDep) -> dict[str, Any]:
    log_unknown_fields(request, body)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if body.encoding_format not in ("float", "base64"):
        raise BadRequestError("encoding_format must be 'float' or 'base64'")
    options = {"input_type": body.input_type} if body.input_type else {}
    # A client that leaves stops the work.
    result = await until_disconnect(request, service.embed(texts, body.model, **options))
    size = len(result.embeddings[0]) if result.embeddings else None
    if body.dimensions is not None and size is not None and body.dimensions != size:
        raise BadRequestError(f"dimensions={body.dimensions}: {result.model} gives {size}-dimensional vectors only")
    tokens = result.prompt_tokens or 0
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": encode_embedding(vector, body.encoding_format)}
            for index, vector in enumerate(result.embeddings)
        ],
        "model": body.model or result.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


# After the routes above: FastAPI matches in order, so chat completions (the busiest) are found first.
router.include_router(image_routes.router)
router.include_router(audio_routes.router)
