"""Routes of the Ollama-compatible API: /api/version, /api/tags, /api/ps, /api/show, /api/chat, /api/generate,
/api/embed."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lollms_server import __version__
from lollms_server.api.deps import BindingManagerDep, EmbeddingServiceDep, GenerationServiceDep
from lollms_server.api.disconnect import until_disconnect
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import run_to_completion, start_stream
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.models import InputData
from lollms_server.api.ollama_compat.catalog import Models, canonical_name, find_target, list_tags, running_entry, show
from lollms_server.api.ollama_compat.ndjson import NdjsonResponse, ndjson_lines
from lollms_server.api.ollama_compat.protocol import (
    ChatBody,
    EmbedBody,
    EmbeddingsBody,
    GenerateBody,
    OllamaBody,
    OllamaErrorResponse,
    SamplingBody,
    ShowBody,
)
from lollms_server.api.ollama_compat.reply import Reply
from lollms_server.api.ollama_compat.translate import (
    chat_items,
    generate_items,
    generate_request,
    ignored_options,
    refuse_unsupported,
)
from lollms_server.api.openapi import EMBEDDING_ERRORS, GENERATION_ERRORS, documented_errors
from lollms_server.api.wire_fields import log_ignored, unknown_fields
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.embeddings import EmbeddingResult, EmbeddingService
from lollms_server.core.errors import BadRequestError
from lollms_server.core.generation import GenerationService
from lollms_server.core.model_access import loaded_models

router = APIRouter(tags=["ollama-compatible"])
# The Ollama release whose API this one follows (format schemas, think); clients gate features on it.
OLLAMA_VERSION = "0.9.0"
_NOT_OLLAMA = "not part of the Ollama API this server implements"
_LOADING = "they configure how a model is loaded, which the binding instance's configuration decides"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return documented_errors(OllamaErrorResponse, *statuses)


def accept(request: Request, body: OllamaBody) -> None:
    """Refuse what would change the answer and cannot be honoured; log what is ignored."""
    refuse_unsupported(body)
    request_id = request_id_of(request) or ""
    loading, unknown_options = ignored_options(body)
    log_ignored("Ollama", request_id, [*unknown_fields(body), *unknown_options], _NOT_OLLAMA)
    log_ignored("Ollama", request_id, loading, _LOADING, level=logging.DEBUG)


def models_of(request: Request, bindings: BindingManager) -> Models:
    config = request.app.state.config
    personalities = getattr(request.app.state, "personality_manager", None)
    return Models(bindings, personalities, config.default_binding("ttt"))


@router.get("/api/version", summary="Ollama API version (and lollms_server's)", responses=errors(500))
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION, "lollms_server_version": __version__}


@router.get(
    "/api/tags", summary="Models: '<instance>/<model>', '<instance>' and 'personality/<id>'", responses=errors(500, 503)
)
async def tags(request: Request, bindings: BindingManagerDep) -> JSONResponse:
    return JsonResponse({"models": await list_tags(models_of(request, bindings))})


@router.get("/api/ps", summary="Loaded models: size and when they unload", responses=errors(500))
async def running(request: Request) -> JSONResponse:
    """Ollama's /api/ps, from the server's model residency (local bindings: llama.cpp, diffusers...)."""
    loaded = loaded_models(request.app.state.resource_manager.models)
    return JsonResponse({"models": [running_entry(model) for model in loaded]})


@router.post(
    "/api/show",
    summary="Details, context length and capabilities of a model",
    responses=errors(400, 404, 413, 415, 422, 500, 502, 503, 504),
)
async def show_model(body: ShowBody, request: Request, bindings: BindingManagerDep) -> JSONResponse:
    log_ignored("Ollama", request_id_of(request) or "", unknown_fields(body), _NOT_OLLAMA)
    name = body.model or body.name
    if not name:
        raise BadRequestError("model is required")
    models = models_of(request, bindings)
    name = await canonical_name(models, name)
    return JsonResponse(await show(name, await find_target(models, name)))


def unloads(keep_alive: float | str | None) -> bool:
    """Whether keep_alive asks to release the model now (0, "0", "0s"...)."""
    return keep_alive is not None and str(keep_alive).rstrip("hms") in ("0", "0.0")


async def answer(
    request: Request, service: GenerationService, body: SamplingBody, items: list[InputData], reply: Reply, raw: bool
) -> Response:
    """Stream NDJSON or answer once; a request with nothing to answer is Ollama's load request."""
    models = models_of(request, service.bindings)
    name = await canonical_name(models, body.model)
    if not items:
        await find_target(models, name)
        # lollms_server's bindings decide when models load and unload; a keep_alive of 0 only gets its reply.
        return JsonResponse(reply.loaded(unloaded=unloads(body.keep_alive)))
    ours = generate_request(name, service.bindings.model_ids, items, body)
    request_id = request_id_of(request) or ""
    if body.streams:
        stream = await start_stream(request, service, ours, request_id, raw)
        lines = ndjson_lines(stream.pump.events(), reply, request_id)
        return NdjsonResponse(lines, on_close=stream.close)
    _, outputs = await run_to_completion(request, service, ours, request_id, raw)
    return JsonResponse(reply.complete(outputs))


@router.post("/api/chat", summary="Chat (NDJSON stream unless stream is false)", responses=errors(*GENERATION_ERRORS))
async def chat(body: ChatBody, request: Request, service: GenerationServiceDep) -> Response:
    accept(request, body)
    reply = Reply(body.model, chat=True, show_thinking=body.think is not False)
    return await answer(request, service, body, chat_items(body) if body.messages else [], reply, raw=False)


@router.post(
    "/api/generate",
    summary="Completion of a prompt (NDJSON stream unless stream is false)",
    responses=errors(*GENERATION_ERRORS),
)
async def generate(body: GenerateBody, request: Request, service: GenerationServiceDep) -> Response:
    accept(request, body)
    reply = Reply(body.model, chat=False, show_thinking=body.think is not False)
    items = generate_items(body) if body.prompt or body.images else []
    return await answer(request, service, body, items, reply, raw=body.raw)


async def embed_texts(
    request: Request, service: EmbeddingService, body: OllamaBody, texts: list[str], **options: Any
) -> EmbeddingResult:
    accept(request, body)
    name = await canonical_name(models_of(request, service.bindings), body.model)
    return await until_disconnect(request, service.embed(texts, name, **options))  # a client that leaves stops it


@router.post("/api/embed", summary="Embeddings of one or more texts", responses=errors(*EMBEDDING_ERRORS))
async def embed(body: EmbedBody, request: Request, service: EmbeddingServiceDep) -> JSONResponse:
    started = time.perf_counter_ns()
    texts = [body.input] if isinstance(body.input, str) else body.input
    # Ollama cuts texts longer than the context unless told not to.
    result = await embed_texts(request, service, body, texts, truncate=body.truncate is not False)
    size = len(result.embeddings[0]) if result.embeddings else None
    if body.dimensions is not None and size is not None and body.dimensions != size:
        raise BadRequestError(f"dimensions={body.dimensions}: {result.model} gives {size}-dimensional vectors only")
    embedded: dict[str, Any] = {
        "model": body.model,
        "embeddings": result.embeddings,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
    }
    if result.prompt_tokens is not None:
        embedded["prompt_eval_count"] = result.prompt_tokens
    return JsonResponse(embedded)


@router.post(
    "/api/embeddings", summary="Embedding of one prompt (Ollama's older endpoint)", responses=errors(*EMBEDDING_ERRORS)
)
async def embeddings(body: EmbeddingsBody, request: Request, service: EmbeddingServiceDep) -> JSONResponse:
    result = await embed_texts(request, service, body, [body.prompt])
    return JsonResponse({"embedding": result.embeddings[0]})
