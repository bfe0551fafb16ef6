"""Gemini calls for one instance, each with our timeout, retries and errors. Generation, speech and Imagen go
straight to the REST API through the lean client of ``lollms_server.core.backend_http`` (aiohttp, orjson, plain
dictionaries): through google-genai's typed models and httpx, a relayed request cost 4x the CPU (bench/README.md).
The model list and a model's details stay on google-genai's async client."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import Any

import anyio
import httpx
from google import genai
from google.genai import types

from lollms_server.core.backend_http import BackendClient, BackendStatusError
from lollms_server.core.errors import BackendAuthError
from lollms_server.core.json_text import json_bytes
from lollms_server.core.remote import RetryPolicy, call_with_retries, stream_with_retries

from .failures import classifier
from .images import image_answer, image_outputs, imagen_outputs
from .messages import (
    GeminiRequest,
    answer_parts,
    build_body,
    build_contents,
    call_events,
    finish_reason,
    parse_safety_settings,
    text_and_thoughts,
    usage_of,
)
from .speech import speech_body, spoken_output, transcription_body

API_VERSION = "v1beta"
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
BASE_URL_VARIABLE = "GOOGLE_GEMINI_BASE_URL"  # google-genai's, honoured the same way here
QUICK_TIMEOUT = 5.0  # seconds, for health checks and the model list behind resolve_model
LIST_PAGE_SIZE = 1000  # the API's maximum: fewest round trips


def _milliseconds(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _metadata(model: str, usage: Any, finish: str | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"model": model, "finish_reason": finish or "stop"}
    if usage is not None:
        metadata["usage"] = usage_of(usage)
    return metadata


def model_path(model: str) -> str:
    """The resource path of a model name, as google-genai makes it: ``models/<name>`` unless it has a collection."""
    return model if model.startswith(("models/", "tunedModels/")) else f"models/{model}"


def _checked(event: Any) -> dict[str, Any]:
    """A streamed event; an ``{"error": ...}`` event (the backend failed mid-stream) raised as its status."""
    if not isinstance(event, dict):
        raise BackendStatusError(502, f"an event that is not a JSON object: {str(event)[:200]}", {})
    error = event.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        status = code if isinstance(code, int) and code >= 400 else 500
        raise BackendStatusError(status, json_bytes(event).decode(), {})
    return event


class GeminiBackend:
    """The calls the binding makes, each wrapped in call_with_retries / stream_with_retries."""

    def __init__(
        self,
        binding: str,
        api_key: str | None,
        base_url: str | None,
        policy: RetryPolicy,
        safety: list[str],
        known_models: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.safety_settings = parse_safety_settings(safety)  # ValueError: the instance is not built
        self.api_key = api_key
        self.base_url = base_url
        self.policy = policy
        # known_models: the names of the binding's cached model list, named when the backend answers 404.
        self.classify = classifier(binding, [api_key or ""], known_models)
        self._binding = binding
        self._client: genai.Client | None = None
        self._client_lock = asyncio.Lock()
        base = (base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")
        self.http = BackendClient(f"{base}/{API_VERSION}", {"x-goog-api-key": api_key or ""}, policy.timeout)

    async def _models(self) -> Any:
        """``client.aio.models``, building the client on first use."""
        self._checked_key()
        async with self._client_lock:
            if self._client is None:
                # Building the client reads certificate files for its SSL contexts: not on the event loop.
                self._client = await anyio.to_thread.run_sync(self._build_client)
        return self._client.aio.models

    def _build_client(self) -> genai.Client:
        options = types.HttpOptions(
            base_url=self.base_url or None,
            api_version=API_VERSION,
            timeout=_milliseconds(self.policy.timeout),
            # One attempt per call: RetryPolicy is the only retry layer (this also turns off the SDK's
            # implicit retries of connection errors when it runs on aiohttp).
            retry_options=types.HttpRetryOptions(attempts=1),
            # httpx whatever else is installed: google-genai switches to aiohttp when aiohttp is importable
            # (litellm, for one, brings it), and one transport keeps timeouts and errors the same everywhere.
            async_client_args={"transport": httpx.AsyncHTTPTransport()},
        )
        return genai.Client(vertexai=False, api_key=self.api_key, http_options=options)

    async def aclose(self) -> None:
        await self.http.close()
        async with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            await client.aio.aclose()
            client.close()

    # --- generation --------------------------------------------------------------------------------
    def request(
        self,
        model: str,
        messages: list[dict[str, str]],
        multimodal: list[Any] | None,
        params: dict[str, Any],
        thoughts: bool,
    ) -> GeminiRequest:
        """The Gemini request of a conversation; BadRequestError when something in it cannot be sent."""
        images, ratio = image_answer(self._binding, model, params)
        system, contents = build_contents(messages, multimodal)
        return GeminiRequest(build_body(system, contents, params, self.safety_settings, thoughts, ratio, images))

    def _checked_key(self) -> None:
        if not self.api_key:
            raise BackendAuthError(f"binding '{self._binding}': no api_key configured")

    async def _generate_content(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        """One ``generateContent`` answer, with our retries and errors."""
        self._checked_key()
        path = f"/{model_path(model)}:generateContent"
        answer = await call_with_retries(lambda: self.http.post_json(path, body), self.policy, self.classify)
        return answer if isinstance(answer, dict) else {}

    async def generate(self, model: str, request: GeminiRequest) -> list[dict[str, Any]]:
        """The complete answer as our outputs: the text (unless only images came), then any images."""
        response = await self._generate_content(model, request.body)
        text, thoughts = text_and_thoughts(response)
        metadata = _metadata(model, response.get("usageMetadata"), finish_reason(response))
        answer = {"type": "text", "data": text, "thoughts": thoughts or None, "metadata": metadata}
        images = image_outputs(answer_parts(response), model)
        calls = [{"type": "function_call", "data": event["content"]} for event in call_events(response)]
        return [*([answer, *images] if text or thoughts or not images else images), *calls]

    async def stream(self, model: str, request: GeminiRequest) -> AsyncGenerator[dict[str, Any], None]:
        """Our chunk dicts as the backend sends them, then the final one with usage and finish reason (and, when
        image parts came, every output: the text and the images)."""
        usage, finish = None, None
        text_parts: list[str] = []
        thought_parts: list[str] = []
        images: list[dict[str, Any]] = []
        async with contextlib.aclosing(self._responses(model, request)) as responses:
            async for response in responses:
                text, thoughts = text_and_thoughts(response)
                if text or thoughts:
                    text_parts.append(text)
                    thought_parts.append(thoughts)
                    yield {"type": "chunk", "content": text, "thoughts": thoughts or None}
                for event in call_events(response):
                    yield event
                for image in image_outputs(answer_parts(response), model):
                    image["metadata"]["index"] = len(images)
                    images.append(image)
                usage = response.get("usageMetadata") or usage  # running totals: the last one counts
                finish = finish_reason(response) or finish
        metadata = _metadata(model, usage, finish)
        if not images:
            yield {"type": "final", "content": None, "metadata": metadata}
            return
        text, thoughts = "".join(text_parts), "".join(thought_parts)
        answer = {"type": "text", "data": text, "thoughts": thoughts or None, "metadata": metadata}
        yield {"type": "final", "content": [answer, *images] if text or thoughts else images, "metadata": metadata}

    async def _responses(self, model: str, request: GeminiRequest) -> AsyncGenerator[dict[str, Any], None]:
        """The stream's events (``streamGenerateContent`` as server-sent events), with our retries and errors."""
        self._checked_key()
        path = f"/{model_path(model)}:streamGenerateContent?alt=sse"

        async def open_stream() -> AsyncIterator[dict[str, Any]]:
            events = await self.http.open_events(path, request.body)
            return (_checked(event) async for event in events)

        # Closed with us, stream_with_retries lets go of the HTTP stream at once.
        responses = stream_with_retries(open_stream, self.policy, self.classify)
        async with contextlib.aclosing(responses):
            async for response in responses:
                yield response

    async def speak(self, model: str, text: str, params: dict[str, Any]) -> dict[str, Any]:
        """Text-to-speech with a Gemini TTS model (raw PCM back, encoded as asked)."""
        response = await self._generate_content(model, speech_body(text, params))
        return await anyio.to_thread.run_sync(spoken_output, response, model, params)

    async def transcribe(self, model: str, items: list[Any], params: dict[str, Any]) -> dict[str, Any]:
        """The text of one audio item, from a model that listens."""
        body = await anyio.to_thread.run_sync(transcription_body, items, params)  # decodes the audio
        text, _ = text_and_thoughts(await self._generate_content(model, body))
        task = "translate" if params.get("translate") else "transcribe"
        return {"type": "text", "data": text.strip(), "metadata": {"model": model, "task": task}}

    async def predict_images(self, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """Imagen's ``models/<model>:predict`` on the Gemini API (google-genai sends generate_images to Vertex AI
        only), as our image outputs."""
        self._checked_key()
        path = f"/{model_path(model)}:predict"
        answer = await call_with_retries(lambda: self.http.post_json(path, body), self.policy, self.classify)
        return imagen_outputs(self._binding, answer if isinstance(answer, dict) else {}, model)

    # --- models ------------------------------------------------------------------------------------
    def _quick_policy(self) -> RetryPolicy:
        return dataclasses.replace(self.policy, timeout=min(self.policy.timeout, QUICK_TIMEOUT), max_retries=0)

    async def _list(self, policy: RetryPolicy, page_size: int, all_pages: bool) -> list[types.Model]:
        config = types.ListModelsConfig(
            page_size=page_size, http_options=types.HttpOptions(timeout=_milliseconds(policy.timeout))
        )

        async def call() -> list[types.Model]:
            pager = await (await self._models()).list(config=config)
            return [model async for model in pager] if all_pages else list(pager.page)

        return await call_with_retries(call, policy, self.classify)

    async def list_models(self, quick: bool = False) -> list[types.Model]:
        """Every model of every page; ``quick``: one attempt with a short timeout (for resolve_model)."""
        return await self._list(self._quick_policy() if quick else self.policy, LIST_PAGE_SIZE, all_pages=True)

    async def probe(self) -> None:
        """One small models.list call, short timeout, no retry: is the backend there, does it take our key?"""
        await self._list(self._quick_policy(), 1, all_pages=False)

    async def get_model(self, name: str) -> types.Model:
        async def call() -> types.Model:
            models = await self._models()
            return await models.get(model=name)

        return await call_with_retries(call, self.policy, self.classify)
