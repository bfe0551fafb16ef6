"""ollama_binding: chat models of an Ollama server.

Chat, the hot relay path, goes through the lean client of ``lollms_server.core.backend_http`` (aiohttp, orjson,
plain dictionaries per streamed line); listing, model details and embeddings through the official SDK's
AsyncClient."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
import ollama
from ollama._client import _parse_host as parse_host  # the SDK's reading of `host`, kept for the lean client

from lollms_server.core.backend_http import BackendClient
from lollms_server.core.bindings import Binding, collect_outputs, token_usage
from lollms_server.core.errors import (
    BackendFailedError,
    BadRequestError,
    CapabilityError,
    LollmsError,
    NotFoundError,
)
from lollms_server.core.remote import RetryPolicy, backend_failure, call_with_retries, stream_with_retries

from .backend import classify, make_client
from .messages import call_events, chat_messages, chat_options, keep_alive_value, response_format
from .models import canonical_name, capabilities, describe, model_info, supports_vision

logger = logging.getLogger(__name__)

T = TypeVar("T")

LISTING_TTL = 60.0  # seconds a model list stays good for checking model names
PROBE_TIMEOUT = 5.0  # at most this long for health checks and the look-ups made while preparing a request
SHOW_CONCURRENCY = 4  # /api/show calls in flight while listing models
TEXT_ROLES = ("user_prompt", "assistant_reply", "system_context")


class OllamaBinding(Binding):
    binding_type_name = "ollama_binding"
    input_modalities = ("text", "image")
    output_modalities = ("text", "embedding")
    tasks = ("ttt",)
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.host = str(config.get("host") or "http://localhost:11434")
        self.policy = RetryPolicy.from_config(config)
        # Look-ups that only refine a request (name check, capabilities) must not hold it up for long.
        self._probe = RetryPolicy(timeout=min(self.policy.timeout, PROBE_TIMEOUT), max_retries=0, backoff=0.0)
        self._api_key: str | None = config.get("api_key") or None
        # The SDK sends $OLLAMA_API_KEY when the instance has no key: mask both.
        self._secrets = [key for key in (self._api_key, os.environ.get("OLLAMA_API_KEY")) if key]
        self._keep_alive = keep_alive_value(config.get("keep_alive"))
        self._num_ctx: int | None = config.get("num_ctx") or None
        self._client: ollama.AsyncClient | None = None
        key = self._api_key or os.environ.get("OLLAMA_API_KEY")
        self.http = BackendClient(
            parse_host(self.host), {"Authorization": f"Bearer {key}"} if key else {}, self.policy.timeout
        )
        self.backend_url = self.http.base_url
        self._client_lock = asyncio.Lock()
        self._listing: dict[str, Any] | None = None  # canonical name -> /api/tags entry
        self._listed_at = 0.0
        self._shows: dict[str, tuple[str | None, Any]] = {}  # canonical name -> (digest, /api/show answer)

    # --- capabilities ------------------------------------------------------------------------------
    def supports_structured_output(self) -> bool:
        return True  # response_format becomes Ollama's format (a JSON schema or "json")

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        if data_type == "text":
            return role in TEXT_ROLES  # other text roles would not reach the conversation
        if data_type != "image":
            return False
        cached = self._shows.get(canonical_name(model_name)) if model_name else None
        # Capabilities unknown (/api/show did not answer): let the backend decide, it reports the real problem.
        return supports_vision(cached[1]) if cached else True

    # --- backend calls -----------------------------------------------------------------------------
    def _classify(self, exc: Exception) -> LollmsError:
        return classify(self.binding_instance_name, exc, self._secrets, models=self._listing)

    async def _sdk(self) -> ollama.AsyncClient:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    # Building an httpx client reads the CA bundle from disk: off the event loop.
                    self._client = await anyio.to_thread.run_sync(
                        make_client, self.host, self._api_key, self.policy.timeout
                    )
        return self._client

    async def _call(self, operation: Callable[[ollama.AsyncClient], Awaitable[T]], policy: RetryPolicy) -> T:
        sdk = await self._sdk()

        async def attempt() -> T:
            with anyio.fail_after(policy.timeout):
                return await operation(sdk)

        return await call_with_retries(attempt, policy, self._classify)

    async def _refresh_listing(self, policy: RetryPolicy) -> dict[str, Any]:
        response = await self._call(lambda sdk: sdk.list(), policy)
        # Keyed by canonical name: a server that lists names without a tag (lollms_server) means ":latest".
        self._listing = {canonical_name(entry.model): entry for entry in response.models if entry.model}
        self._listed_at = time.monotonic()
        return self._listing

    async def _listed(self, max_age: float) -> dict[str, Any] | None:
        """The backend's models, cached up to ``max_age`` seconds; None when it cannot list them."""
        if self._listing is not None and time.monotonic() - self._listed_at < max_age:
            return self._listing
        try:
            return await self._refresh_listing(self._probe)
        except LollmsError as exc:
            logger.debug("Listing models of '%s' failed: %s", self.binding_instance_name, exc)
            return None

    async def _show(self, name: str, digest: str | None, policy: RetryPolicy) -> Any:
        """/api/show for ``name``, cached while the model's digest stays the same."""
        cached = self._shows.get(name)
        if cached is not None and digest is not None and cached[0] == digest:
            return cached[1]
        show = await self._call(lambda sdk: sdk.show(name), policy)
        self._shows[name] = (digest, show)
        return show

    async def _show_quietly(self, name: str, digest: str | None, limit: asyncio.Semaphore | None = None) -> Any:
        try:
            async with limit or contextlib.nullcontext():
                return await self._show(name, digest, self._probe)
        except LollmsError as exc:
            logger.debug("Details of model '%s' unavailable: %s", name, exc)
            return None

    async def embed(self, texts: list[str], model_name: str | None = None, **options: Any) -> dict[str, Any]:
        """Embeddings from Ollama's embed API (models such as nomic-embed-text)."""
        model = self._requested(model_name)
        # Said from the model's own capabilities: Ollama's refusal text is not passed on to clients.
        wanted = canonical_name(model)
        listed = (await self._listed(LISTING_TTL) or {}).get(wanted)
        show = await self._show_quietly(wanted, listed.digest) if listed is not None else None
        if show is not None and "embedding" not in capabilities(show):
            raise BadRequestError(
                f"model '{model}' of binding '{self.binding_instance_name}' does not support embeddings "
                f"(its capabilities: {', '.join(capabilities(show))})"
            )
        response = await self._call(lambda sdk: sdk.embed(model=model, input=texts), self.policy)
        return {
            "embeddings": [list(vector) for vector in response.embeddings],
            "prompt_tokens": response.prompt_eval_count,
        }

    async def health_check(self) -> tuple[bool, str]:
        try:
            await self._refresh_listing(self._probe)
        except LollmsError as exc:
            return False, str(exc)
        return True, "ok"

    # --- models --------------------------------------------------------------------------------------
    def _requested(self, model_name: str | None) -> str:
        name = model_name or self.model_name or self.default_model_name
        if not name:
            raise BadRequestError(
                f"binding '{self.binding_instance_name}': name a model in the request or set the instance's "
                "default_model"
            )
        return name

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = self._requested(model_name)
        wanted = canonical_name(name)
        asked_at = time.monotonic()
        listing = await self._listed(LISTING_TTL)
        if listing is not None and wanted not in listing and self._listed_at < asked_at:
            listing = await self._listed(0.0)  # the list came from the cache: pulled since?
        if listing is None:
            return name  # the backend cannot list its models now; the generation will report why
        if wanted not in listing:
            available = ", ".join(listing) or "none"
            raise NotFoundError(
                f"model '{name}' not found on binding '{self.binding_instance_name}' (available: {available}); "
                f"pull it with `ollama pull {name}`"
            )
        await self._show_quietly(wanted, listing[wanted].digest)  # capabilities, for model_supports_input
        return wanted

    async def list_available_models(self) -> list[dict[str, Any]]:
        listing = await self._refresh_listing(self.policy)
        limit = asyncio.Semaphore(SHOW_CONCURRENCY)
        shows = await asyncio.gather(
            *(self._show_quietly(name, entry.digest, limit) for name, entry in listing.items())
        )
        return [describe(entry, show) for entry, show in zip(listing.values(), shows, strict=True)]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = canonical_name(self._requested(model_name))
        listed = (self._listing or {}).get(name)
        show = await self._show(name, listed.digest if listed else None, self.policy)
        return model_info(name, show, self._num_ctx)

    async def load_model(self, model_name: str) -> bool:
        # Ollama loads models on demand: "loading" checks the name and makes it the instance's model.
        self.model_name = await self.resolve_model(model_name)
        return True

    async def unload_model(self) -> bool:
        self.model_name = None
        client, self._client = self._client, None
        if client is not None:
            await client.close()  # the server calls this at shutdown: release the pooled connections
        await self.http.close()
        return True

    # --- generation ----------------------------------------------------------------------------------
    def _chat(
        self, model: str, messages: list[dict[str, Any]], params: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Parts of a streamed chat answer (/api/chat's JSON lines); opening it and waiting for its first part
        are retried."""
        body = {
            "model": model,
            "messages": messages,
            "options": chat_options(params, self._num_ctx) or None,
            "keep_alive": self._keep_alive,
            "think": params.get("think"),
            "format": response_format(params),
            # Ollama's tools are OpenAI's shape; it has no tool_choice ("none": no tools sent).
            "tools": params.get("tools") if params.get("tool_choice") != "none" else None,
            "stream": True,
        }
        body = {key: value for key, value in body.items() if value is not None}  # as the SDK sends it

        async def open_stream() -> AsyncIterator[dict[str, Any]]:
            return await self.http.open_lines("/api/chat", body)

        return stream_with_retries(open_stream, self.policy, self._classify)

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if request_info.get("raw_prompt"):
            # Completions without a chat template would need /api/generate with raw=True; this binding chats.
            raise CapabilityError(f"binding '{self.binding_instance_name}' serves chat only, not raw prompts")
        model = self._requested(request_info.get("model_name"))
        messages = chat_messages(request_info, prompt, multimodal_data)
        last: dict[str, Any] | None = None
        # Closed as soon as our consumer stops, so Ollama's connection is dropped and it stops generating.
        async with contextlib.aclosing(self._chat(model, messages, params)) as parts:
            async for part in parts:
                if not isinstance(part, dict):
                    continue
                if part.get("error"):  # Ollama failed while generating
                    raise backend_failure(
                        self.binding_instance_name,
                        "the backend failed while generating",
                        str(part["error"]),
                        self._secrets,
                    )
                message: dict[str, Any] = part["message"] if isinstance(part.get("message"), dict) else {}
                content, thinking = message.get("content") or "", message.get("thinking") or ""
                if content or thinking:
                    # <think> tags in content are left for the server's parser.
                    yield {"type": "chunk", "content": content, "thoughts": thinking or None}
                for event in call_events(message):
                    yield event
                if part.get("done"):
                    last = part
        if last is None:
            raise BackendFailedError(f"binding '{self.binding_instance_name}': the backend's answer ended early")
        usage = token_usage(last.get("prompt_eval_count") or 0, last.get("eval_count") or 0)
        finish_reason = "length" if last.get("done_reason") == "length" else "stop"
        yield {
            "type": "final",
            "content": None,
            "metadata": {"model": model, "usage": usage, "finish_reason": finish_reason},
        }

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        # Streamed from Ollama too: the timeout then bounds each silence, not the whole generation.
        return await collect_outputs(self.generate_stream(prompt, params, request_info, multimodal_data))
