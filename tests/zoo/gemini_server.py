"""A loopback fake of the Gemini REST API (v1beta) for the gemini_binding tests."""

# It speaks exactly the calls the binding makes (its own REST client, and google-genai's for the model list).
# Covered:
# - ``POST /v1beta/models/{model}:generateContent``: one GenerateContentResponse;
# - ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``: SSE events ``data: <GenerateContentResponse>``,
#   the last one with ``finishReason`` and ``usageMetadata``;
# - ``GET /v1beta/models?pageSize=&pageToken=``: ``models`` and ``nextPageToken`` (at most ``page_limit`` per page);
# - ``GET /v1beta/models/{model}``: one model (name, displayName, description, version, inputTokenLimit,
#   outputTokenLimit, supportedGenerationMethods, thinking), or 404 NOT_FOUND;
# - request fields by their camelCase or snake_case names, as Google's JSON parser accepts both;
# - authentication by the ``x-goog-api-key`` header, refused as Google does: a wrong key gets 400 with reason
#   API_KEY_INVALID, no key 403 PERMISSION_DENIED; errors use Google's ``{"error": {code, message, status}}`` body.
#   Unlike Google, every error message echoes the presented key in every form a careless proxy might
#   (``key_echoes.echoes``): the binding must pass none of it on.
#
# Replies are deterministic: ``Echo: <last user text>`` (plus ``[n image(s)]`` when inline images came), one word
# per token in ``usageMetadata``, cut to ``maxOutputTokens`` words with ``MAX_TOKENS``, cut before the first stop
# sequence, and a ``thought`` part first when the model name contains "thinking" and ``includeThoughts`` is asked.
#
# Image models (names with "image") asked for ``responseModalities`` with IMAGE answer with the text and one
# ``inlineData`` part: a real PNG (pillow) of ``IMAGE_SIDE`` pixels on its longer side, shaped by
# ``imageConfig.aspectRatio``, its colour taken from the prompt; streamed, the image comes in its own event.
# - ``POST /v1beta/models/{imagen}:predict`` (Imagen on the Gemini API): ``instances[0].prompt`` and
#   ``parameters.sampleCount`` / ``aspectRatio`` give ``predictions`` of ``{bytesBase64Encoded, mimeType}``, real PNGs
#   as above (the colour from the prompt and the image's index); a prompt containing "forbidden" is filtered
#   (``{"raiFilteredReason": ...}`` instead of an image), as Google does.
#
# Failure switches (``fail``): an HTTP status for every call of the chosen operations, a delay before answering,
# a stream that sends some chunks and then an error event, or a 200 answer of the wrong kind (an HTML page as a
# web server where base_url points wrong would send, or an event stream to a plain call). Every call is
# recorded in ``calls``.
#
# Speech: a model whose name holds "tts" asked for ``responseModalities`` AUDIO answers raw 16-bit PCM at 24 kHz
# (``audio/L16;codec=pcm;rate=24000``), a tone of 0.1 s per word; audio ``inlineData`` parts are echoed as
# ``[n audio]``.
#
# Function calling: with ``tools`` (functionDeclarations) and toolConfig mode ANY (or AUTO when the prompt says
# "call"), the answer is one ``functionCall`` part (the allowed or first function; each required string argument
# set to the prompt's text); ``functionResponse`` parts in the last user turn are echoed as
# ``[<name> said <result>]``.
#
# Not covered: countTokens, embeddings, files, caches, tuned models, Vertex AI paths.

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.zoo.key_echoes import echoes

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
GENERATION = ("generate", "stream", "predict")
THOUGHT_TOKENS = 3
IMAGE_SIDE = 32


def model_entry(name: str, context: int, output: int, thinking: bool, methods: list[str] | None = None) -> dict:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name.replace("-", " ").title(),
        "description": f"Fake {name}.",
        "inputTokenLimit": context,
        "outputTokenLimit": output,
        "supportedGenerationMethods": methods or ["generateContent", "countTokens"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
        "thinking": thinking,
    }


def default_models() -> list[dict[str, Any]]:
    return [
        model_entry("gemini-2.5-flash", 1048576, 65536, thinking=True),
        model_entry("gemini-2.0-flash", 1048576, 8192, thinking=False),
        model_entry("gemini-2.0-flash-thinking-exp", 32768, 8192, thinking=True),
        model_entry("text-embedding-004", 2048, 1, thinking=False, methods=["embedContent"]),
        model_entry("gemma-3-27b-it", 131072, 8192, thinking=False),
        model_entry("gemini-2.5-flash-image", 32768, 32768, thinking=False),
        model_entry("gemini-2.5-flash-preview-tts", 8192, 16384, thinking=False),
        model_entry("imagen-4.0-generate-001", 480, 8192, thinking=False, methods=["predict"]),
    ]


def png(prompt: str, aspect_ratio: str | None) -> bytes:
    """A small PNG whose colour comes from ``prompt`` and whose shape from ``aspect_ratio`` ("16:9")."""
    from PIL import Image  # only the image tests need pillow

    across, _, down = (aspect_ratio or "1:1").partition(":")
    scale = IMAGE_SIDE / max(int(across), int(down))
    size = (max(1, round(int(across) * scale)), max(1, round(int(down) * scale)))
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    buffer = io.BytesIO()
    Image.new("RGB", size, tuple(digest[:3])).save(buffer, format="PNG")
    return buffer.getvalue()


def error_body(status: int, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    error = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = details
    return {"error": error}


@dataclass
class Call:
    """One request as the fake received it."""

    operation: str  # generate, stream, predict, list or get
    model: str | None
    body: dict[str, Any]
    query: dict[str, str]
    with_key: bool


@dataclass
class FakeGemini:
    api_key: str = "fake-gemini-key"
    page_limit: int = 2
    models: list[dict[str, Any]] = field(default_factory=default_models)
    calls: list[Call] = field(default_factory=list)
    # Failure switches, see ``fail``.
    status: int | None = None
    delay: float = 0.0
    break_stream_after: int | None = None
    retry_delay: str | None = None
    answer: str | None = None
    failing: tuple[str, ...] = GENERATION

    def fail(
        self,
        status: int | None = None,
        *,
        delay: float = 0.0,
        break_stream_after: int | None = None,
        retry_delay: str | None = None,
        answer: str | None = None,
        operations: tuple[str, ...] = GENERATION,
    ) -> None:
        """From now on, calls of ``operations`` wait ``delay`` s, then answer ``status``, break streams or give
        the wrong ``answer``."""
        # retry_delay: a RetryInfo duration ("1s") sent with a 429; break_stream_after: chunks sent before the
        # stream's error event; answer: "html" (a web page) or "sse" (an event stream), with status 200.
        self.status, self.delay, self.break_stream_after = status, delay, break_stream_after
        self.retry_delay, self.answer, self.failing = retry_delay, answer, operations

    def heal(self) -> None:
        self.fail(None)

    def count(self, operation: str) -> int:
        return sum(1 for call in self.calls if call.operation == operation)

    def last(self, operation: str) -> Call:
        return [call for call in self.calls if call.operation == operation][-1]

    # --- the app -------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1beta/{path:path}", self._handle, methods=["GET", "POST"])])

    async def _handle(self, request: Request) -> Response:
        path = request.path_params["path"]
        operation, model = self._route(request.method, path, request.query_params.get("alt"))
        if operation is None:
            return JSONResponse(error_body(404, f"no such method: {request.method} /v1beta/{path}"), 404)
        body = json.loads(await request.body() or b"{}") if request.method == "POST" else {}
        presented = request.headers.get("x-goog-api-key")
        self.calls.append(Call(operation, model, body, dict(request.query_params), bool(presented)))
        failing = operation in self.failing
        if failing and self.delay:
            await asyncio.sleep(self.delay)
        refused = self._refusal(presented)
        if refused is not None:
            return refused
        if failing and self.status is not None:
            return self._failure(self.status, presented or "")
        if failing and self.answer == "html":
            return HTMLResponse("<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>")
        if failing and self.answer == "sse" and operation != "stream":
            return StreamingResponse(self._events(self._reply(model or "", body)), media_type="text/event-stream")
        if operation == "list":
            return self._list(request.query_params)
        entry = next((item for item in self.models if item["name"] == f"models/{model}"), None)
        if entry is None:
            return JSONResponse(error_body(404, f"models/{model} is not found for API version v1beta"), 404)
        if operation == "get":
            return JSONResponse(entry)
        if operation == "predict":
            return JSONResponse(self._predictions(body))
        reply = self._reply(model or "", body)
        if operation == "generate":
            return JSONResponse(reply)
        return StreamingResponse(self._events(reply), media_type="text/event-stream")

    @staticmethod
    def _route(method: str, path: str, alt: str | None) -> tuple[str | None, str | None]:
        if method == "GET" and path == "models":
            return "list", None
        name = path.removeprefix("models/")
        if not path.startswith("models/") or not name:
            return None, None
        if method == "GET" and ":" not in name:
            return "get", name
        model, _, verb = name.partition(":")
        if method == "POST" and verb == "generateContent":
            return "generate", model
        if method == "POST" and verb == "streamGenerateContent" and alt == "sse":
            return "stream", model
        if method == "POST" and verb == "predict":
            return "predict", model
        return None, None

    def _refusal(self, presented: str | None) -> Response | None:
        if not presented:
            return JSONResponse(error_body(403, "Method doesn't allow unregistered callers."), 403)
        if presented != self.api_key:
            reason = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
            message = f"API key not valid ({echoes(presented)}). Please pass a valid API key."
            return JSONResponse(error_body(400, message, [reason]), 400)
        return None

    def _failure(self, status: int, presented: str) -> Response:
        details = None
        if status == 429 and self.retry_delay:
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": self.retry_delay}]
        # Some proxies echo the credentials they refused: the binding must never pass them on.
        return JSONResponse(error_body(status, f"injected failure (key {echoes(presented)})", details), status)

    def _list(self, query: Any) -> Response:
        size = min(int(query.get("pageSize") or 50), self.page_limit)
        start = int(query.get("pageToken") or 0)
        page: dict[str, Any] = {"models": self.models[start : start + size]}
        if start + size < len(self.models):
            page["nextPageToken"] = str(start + size)
        return JSONResponse(page)

    # --- replies ---------------------------------------------------------------------------------
    @staticmethod
    def _reply(model: str, body: dict[str, Any]) -> dict[str, Any]:
        contents = body.get("contents", [])
        user_parts: list[dict[str, Any]] = next(
            (turn["parts"] for turn in reversed(contents) if turn.get("role") == "user"), []
        )
        text = " ".join(part["text"] for part in user_parts if "text" in part)
        blobs = [proto_field(part, "inlineData") for part in user_parts]
        sounds = sum(1 for blob in blobs if blob and str(proto_field(blob, "mimeType")).startswith("audio/"))
        images = sum(1 for blob in blobs if blob) - sounds
        results = [proto_field(part, "functionResponse") for part in user_parts]
        answer = f"Echo: {text}" + (f" [{images} image{'s' * (images > 1)}]" if images else "")
        answer += f" [{sounds} audio]" if sounds else ""
        answer += "".join(f" [{r['name']} said {r['response']['result']}]" for r in results if r)
        config = proto_field(body, "generationConfig") or {}
        if "tts" in model and "AUDIO" in (proto_field(config, "responseModalities") or []):
            return FakeGemini._speech(model, text, config)
        call = FakeGemini._call(body, text)
        if call is not None:
            candidate = {"content": {"role": "model", "parts": [{"functionCall": call}]}, "finishReason": "STOP"}
            usage = {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}
            return {"candidates": [{**candidate, "index": 0}], "usageMetadata": usage, "modelVersion": model}
        config = proto_field(body, "generationConfig") or {}
        finish = "STOP"
        for stop in proto_field(config, "stopSequences") or []:
            if stop in answer:
                answer = answer[: answer.index(stop)]
        words = re.findall(r"\S+\s*", answer)
        limit = proto_field(config, "maxOutputTokens")
        if limit is not None and len(words) > limit:
            words, finish = words[:limit], "MAX_TOKENS"
        parts: list[dict[str, Any]] = [{"text": "".join(words)}]
        thinks = "thinking" in model and proto_field(proto_field(config, "thinkingConfig") or {}, "includeThoughts")
        if thinks:
            parts.insert(0, {"text": f"Pondering {len(text.split())} words.", "thought": True})
        if "image" in model and "IMAGE" in (proto_field(config, "responseModalities") or []):
            ratio = proto_field(proto_field(config, "imageConfig") or {}, "aspectRatio")
            data = base64.b64encode(png(text, ratio)).decode("ascii")
            parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
        system = proto_field(body, "systemInstruction") or {}
        prompt = sum(len(part.get("text", "").split()) for turn in contents for part in turn["parts"])
        prompt += sum(len(part.get("text", "").split()) for part in system.get("parts", []))
        usage = {"promptTokenCount": prompt, "candidatesTokenCount": len(words)}
        usage["totalTokenCount"] = prompt + len(words) + (THOUGHT_TOKENS if thinks else 0)
        if thinks:
            usage["thoughtsTokenCount"] = THOUGHT_TOKENS
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}

    @staticmethod
    def _speech(model: str, text: str, config: dict[str, Any]) -> dict[str, Any]:
        """A TTS model's answer: raw 16-bit PCM at 24 kHz, a 220 Hz tone of 0.1 s per word of the text."""
        import numpy

        seconds = 0.1 * max(1, len(text.split()))
        wave = 0.3 * numpy.sin(2 * numpy.pi * 220 * numpy.arange(int(24000 * seconds)) / 24000)
        pcm = (wave * 32767).astype("<i2").tobytes()
        voice = proto_field(
            proto_field(proto_field(config, "speechConfig") or {}, "voiceConfig") or {}, "prebuiltVoiceConfig"
        )
        part = {"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}
        candidate = {"content": {"role": "model", "parts": [part]}, "finishReason": "STOP", "index": 0}
        usage = {
            "promptTokenCount": len(text.split()),
            "candidatesTokenCount": 1,
            "totalTokenCount": len(text.split()) + 1,
        }
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "voice": voice}

    @staticmethod
    def _call(body: dict[str, Any], text: str) -> dict[str, Any] | None:
        """A functionCall when the request offers functions and its mode is ANY (or AUTO and the prompt says
        "call"): the allowed (or first) function, each required string argument set to the prompt's text."""
        declarations = [
            declaration
            for tool in body.get("tools") or []
            for declaration in proto_field(tool, "functionDeclarations") or []
        ]
        config = proto_field(proto_field(body, "toolConfig") or {}, "functionCallingConfig") or {}
        mode = config.get("mode", "AUTO")
        if not declarations or mode == "NONE" or (mode == "AUTO" and "call" not in text.lower()):
            return None
        allowed = proto_field(config, "allowedFunctionNames") or [declarations[0]["name"]]
        declaration = next(item for item in declarations if item["name"] == allowed[0])
        schema = proto_field(declaration, "parametersJsonSchema") or {}
        properties = schema.get("properties") or {}
        args = {name: text for name in schema.get("required") or [] if properties.get(name, {}).get("type") == "string"}
        return {"name": declaration["name"], "args": args}

    @staticmethod
    def _predictions(body: dict[str, Any]) -> dict[str, Any]:
        prompt = str(body["instances"][0]["prompt"])
        parameters = body.get("parameters") or {}
        if "forbidden" in prompt:
            return {"predictions": [{"raiFilteredReason": "The prompt was blocked by the safety filter."}]}
        ratio = parameters.get("aspectRatio")
        images = [png(f"{prompt} #{index}", ratio) for index in range(int(parameters.get("sampleCount") or 1))]
        return {
            "predictions": [
                {"bytesBase64Encoded": base64.b64encode(image).decode("ascii"), "mimeType": "image/png"}
                for image in images
            ]
        }

    async def _events(self, reply: dict[str, Any]) -> AsyncIterator[bytes]:
        candidate = reply["candidates"][0]
        pieces: list[dict[str, Any]] = []
        for part in candidate["content"]["parts"]:
            if part.get("thought") or "text" not in part:
                pieces.append(part)
            else:
                pieces += [{"text": word} for word in re.findall(r"\S+\s*", part["text"])]
        for index, piece in enumerate(pieces):
            if self.break_stream_after is not None and "stream" in self.failing and index == self.break_stream_after:
                yield sse(error_body(500, "injected failure in the middle of the stream"))
                return
            event: dict[str, Any] = {"candidates": [{"content": {"role": "model", "parts": [piece]}, "index": 0}]}
            if index == len(pieces) - 1:
                event["candidates"][0]["finishReason"] = candidate["finishReason"]
                event["usageMetadata"] = reply["usageMetadata"]
            yield sse(event)
            await asyncio.sleep(0)


def proto_field(message: dict[str, Any], name: str) -> Any:
    """A field by its JSON (camelCase) or proto (snake_case) name, as Google's JSON parser accepts both."""
    # The SDK sends some nested fields in snake_case (thinkingConfig.include_thoughts, inlineData.mime_type).
    snake = re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()
    return message.get(name, message.get(snake))


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode("utf-8") + b"\r\n\r\n"
