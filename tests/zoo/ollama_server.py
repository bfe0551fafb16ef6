"""A fake Ollama server for the ollama_binding tests: a Starlette app to run with tests/server.serving.

Protocol covered (https://github.com/ollama/ollama/blob/main/docs/api.md), for the calls the ``ollama`` SDK's
AsyncClient makes on behalf of the binding:
- POST /api/chat, streaming (NDJSON, Ollama's default) and not: ``message.content``, ``message.thinking``,
  ``done``, ``done_reason``, ``prompt_eval_count``, ``eval_count``, ``model``; ``options.num_predict`` cuts
  the answer (done_reason "length"); images are counted; ``format`` (JSON mode or a schema) gets a JSON
  object; unknown models answer 404.
- GET /api/tags: name, model, size, modified_at, digest, details (format, family, families, parameter_size,
  quantization_level).
- POST /api/show: details, model_info with "general.architecture" and "<family>.context_length",
  capabilities, license; unknown models answer 404.
- POST /api/embed: ``input`` as a string or a list, ``embeddings``, ``prompt_eval_count``; models without
  the "embedding" capability answer 400.
- GET /api/version.
Not covered: tools, logprobs, /api/generate, model management, /api/ps.

Answers are deterministic: the reply is "You said: <last user message>" (plus "[N image(s)]"), one chunk per
word; models named like "*think*" first send "Reasoning about: <last user message>" as ``thinking`` (unless
the request says think=false). Every request is recorded on the ``FakeOllama`` state the test holds, whose
attributes also switch failures on: ``failure`` (an HTTP status with optional Retry-After, a hang until
the client gives up, or a 200 answer of the wrong kind — an HTML page as a web server where ``host`` points
wrong would send, an event stream — on chosen paths, for a number of requests) and ``break_stream_after`` (an
error line in the middle of a streamed answer, as Ollama sends when generation fails). Refusals (401/403) echo
the presented key in every form a careless proxy might (``key_echoes.echoes``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.zoo.key_echoes import echoes

CREATED_AT = "2025-05-10T10:00:00.000000Z"
HANG_LIMIT = 30.0  # a hang ends by itself after this long, whatever the client does


@dataclass
class FakeModel:
    name: str
    family: str = "llama"
    families: tuple[str, ...] = ("llama",)
    capabilities: tuple[str, ...] = ("completion",)
    context_length: int = 131072
    parameter_size: str = "3.2B"
    quantization_level: str = "Q4_K_M"
    size: int = 2_019_393_189

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.name.encode()).hexdigest()


DEFAULT_MODELS = [
    FakeModel("llama3.2:latest"),
    FakeModel(
        "llava:7b",
        families=("llama", "clip"),
        capabilities=("completion", "vision"),
        context_length=4096,
        parameter_size="7B",
        quantization_level="Q4_0",
        size=4_733_363_377,
    ),
    FakeModel("deepthink-r1:8b", family="qwen3", families=("qwen3",), capabilities=("completion", "thinking")),
    FakeModel("nomic-embed-text:latest", family="nomic-bert", families=("nomic-bert",), capabilities=("embedding",)),
]
EMBEDDING_SIZE = 8


def fake_embedding(text: str) -> list[float]:
    """A deterministic unit vector per text (the fake has no model; equality is what tests can check)."""
    raw = [byte - 128 for byte in hashlib.sha256(text.encode()).digest()[:EMBEDDING_SIZE]]
    norm = sum(value * value for value in raw) ** 0.5 or 1.0
    return [value / norm for value in raw]


@dataclass
class Failure:
    """How the fake misbehaves: an HTTP ``status`` (with ``retry_after``), a ``hang``, or an ``answer`` of the
    wrong kind with status 200 ("html": a web page, "sse": an event stream)."""

    status: int | None = None
    retry_after: str | None = None
    hang: bool = False
    answer: str | None = None
    paths: tuple[str, ...] = ("/api/chat",)
    times: int | None = None  # requests that fail before it serves normally again; None: until cleared
    message: str = "something went wrong"


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    at: float


@dataclass
class FakeOllama:
    models: list[FakeModel] = field(default_factory=lambda: list(DEFAULT_MODELS))
    requests: list[Recorded] = field(default_factory=list)
    failure: Failure | None = None
    break_stream_after: int | None = None  # content chunks sent before an error line ends the stream
    api_key: str | None = None  # when set, other keys are refused (401) on every path, as a proxy does
    hangs_left_by_client: int = 0  # hangs that ended because the client went away (not at HANG_LIMIT)

    def received(self, path: str = "/api/chat") -> list[Recorded]:
        return [request for request in self.requests if request.path == path]

    def model(self, name: str) -> FakeModel | None:
        wanted = name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
        return next((model for model in self.models if model.name == wanted), None)

    def failing(self, path: str) -> Failure | None:
        failure = self.failure
        if failure is None or path not in failure.paths or failure.times == 0:
            return None
        if failure.times is not None:
            failure.times -= 1
        return failure


def not_found(name: str) -> JSONResponse:
    return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)


async def until_disconnected(request: Request) -> bool:
    """Whether the client went away (False: the hang reached HANG_LIMIT)."""
    deadline = time.monotonic() + HANG_LIMIT
    while time.monotonic() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.02)
    return False


def reply_pieces(model: FakeModel, body: dict[str, Any]) -> tuple[list[str], list[str], str]:
    """(thinking pieces, content pieces, done_reason) of a chat request."""
    users = [message for message in body.get("messages") or [] if message.get("role") == "user"]
    last = users[-1] if users else {}
    text = f"You said: {last.get('content', '')}"
    if last.get("images"):
        text += f" [{len(last['images'])} image(s)]"
    if body.get("format"):  # JSON mode or a JSON schema: answer with a JSON object
        text = json.dumps({"said": last.get("content", "")})
    content = re.findall(r"\s*\S+", text)
    thinking = []
    if "think" in model.name and body.get("think") is not False:
        thinking = re.findall(r"\s*\S+", f"Reasoning about: {last.get('content', '')}")
    limit = (body.get("options") or {}).get("num_predict")
    if limit is not None and 0 <= limit < len(content):
        return thinking, content[:limit], "length"
    return thinking, content, "stop"


def usage(body: dict[str, Any], completion: int) -> dict[str, Any]:
    words = sum(len(str(message.get("content", "")).split()) for message in body.get("messages") or [])
    return {"total_duration": 1_000_000, "prompt_eval_count": words + 4, "eval_count": completion}


def create_app(state: FakeOllama) -> Starlette:
    """The fake Ollama server over ``state``."""

    async def record(request: Request) -> dict[str, Any]:
        raw = await request.body()
        body = json.loads(raw) if raw else {}
        state.requests.append(Recorded(request.method, request.url.path, body, dict(request.headers), time.monotonic()))
        return body

    async def misbehave(request: Request) -> Response | None:
        if state.api_key is not None and request.headers.get("authorization") != f"Bearer {state.api_key}":
            failure: Failure | None = Failure(status=401)
        else:
            failure = state.failing(request.url.path)
        if failure is None:
            return None
        if failure.hang:
            if await until_disconnected(request):
                state.hangs_left_by_client += 1
            return Response(status_code=500)
        if failure.answer == "html":
            return HTMLResponse("<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>")
        if failure.answer == "sse":
            return Response('data: {"message": "hello"}\n\n', media_type="text/event-stream")
        message = failure.message
        if failure.status in (401, 403):
            token = request.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"unauthorized: key {echoes(token)} is not valid"  # servers do echo keys: we must not
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        return JSONResponse({"error": message}, status_code=failure.status or 500, headers=headers)

    async def chat(request: Request) -> Response:
        body = await record(request)
        if (failed := await misbehave(request)) is not None:
            return failed
        model = state.model(str(body.get("model", "")))
        if model is None:
            return not_found(str(body.get("model")))
        images = [image for message in body.get("messages") or [] for image in message.get("images") or []]
        if images and "vision" not in model.capabilities:
            return JSONResponse({"error": "this model does not support image input"}, status_code=400)
        thinking, content, done_reason = reply_pieces(model, body)
        final = {
            "model": model.name,
            "created_at": CREATED_AT,
            "done": True,
            "done_reason": done_reason,
            **usage(body, len(content)),
        }
        if body.get("stream") is False:
            message = {"role": "assistant", "content": "".join(content)}
            if thinking:
                message["thinking"] = "".join(thinking)
            return JSONResponse({**final, "message": message})

        async def lines() -> AsyncIterator[bytes]:
            for piece in thinking:
                yield line({"role": "assistant", "content": "", "thinking": piece})
            for index, piece in enumerate(content):
                if state.break_stream_after == index:
                    yield (json.dumps({"error": "llama runner process has terminated"}) + "\n").encode()
                    return
                yield line({"role": "assistant", "content": piece})
            yield (json.dumps({**final, "message": {"role": "assistant", "content": ""}}) + "\n").encode()

        def line(message: dict[str, Any]) -> bytes:
            part = {"model": model.name, "created_at": CREATED_AT, "message": message, "done": False}
            return (json.dumps(part) + "\n").encode()

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def tags(request: Request) -> Response:
        await record(request)
        if (failed := await misbehave(request)) is not None:
            return failed
        return JSONResponse({"models": [listed(model) for model in state.models]})

    async def show(request: Request) -> Response:
        body = await record(request)
        if (failed := await misbehave(request)) is not None:
            return failed
        name = str(body.get("model") or body.get("name") or "")
        model = state.model(name)
        if model is None:
            return not_found(name)
        return JSONResponse(
            {
                "license": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024",
                "modelfile": f"FROM {model.name}",
                "parameters": 'stop "<|eot_id|>"',
                "template": "{{ .Prompt }}",
                "details": details(model),
                "model_info": {
                    "general.architecture": model.family,
                    "general.parameter_count": 3_212_749_888,
                    f"{model.family}.context_length": model.context_length,
                    f"{model.family}.embedding_length": 3072,
                },
                "capabilities": list(model.capabilities),
                "modified_at": CREATED_AT,
            }
        )

    async def embed(request: Request) -> Response:
        body = await record(request)
        if (failed := await misbehave(request)) is not None:
            return failed
        model = state.model(str(body.get("model", "")))
        if model is None:
            return not_found(str(body.get("model")))
        if "embedding" not in model.capabilities:
            return JSONResponse({"error": f'"{model.name}" does not support embeddings'}, status_code=400)
        texts = body["input"] if isinstance(body.get("input"), list) else [body.get("input", "")]
        return JSONResponse(
            {
                "model": model.name,
                "embeddings": [fake_embedding(text) for text in texts],
                "prompt_eval_count": sum(len(text.split()) for text in texts),
            }
        )

    async def version(request: Request) -> Response:
        await record(request)
        return JSONResponse({"version": "0.12.3"})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
            Route("/api/show", show, methods=["POST"]),
            Route("/api/embed", embed, methods=["POST"]),
            Route("/api/version", version, methods=["GET"]),
        ]
    )


def details(model: FakeModel) -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": model.family,
        "families": list(model.families),
        "parameter_size": model.parameter_size,
        "quantization_level": model.quantization_level,
    }


def listed(model: FakeModel) -> dict[str, Any]:
    return {
        "name": model.name,
        "model": model.name,
        "modified_at": CREATED_AT,
        "size": model.size,
        "digest": model.digest,
        "details": details(model),
    }
