"""openai_binding: OpenAI and OpenAI-compatible servers — chat, images and audio.

Chat completions and the model list, the hot relay path, go through the lean client of
``lollms_server.core.backend_http`` (aiohttp, orjson, plain dictionaries): against the official SDK it costs a
tenth of the CPU per streamed answer (bench/README.md, "Relay"). The images and audio APIs (multipart uploads,
binary answers) go through the official async SDK.

Which API serves a request is decided by its model: a model listed in the instance's ``image_models`` goes to
the images API (``images.generate``, or ``images.edit`` when the request carries an input image), any other
model to chat completions (as on OpenAI itself, where image models do not chat and chat models do not answer
the images API). The request's task must agree: a tti/i2i request to a chat model, or a text request to an
image model, is a 400; a tti/i2i request that names no model gets ``default_image_model`` when the instance's
``default_model`` chats."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
import openai

from lollms_server import __version__
from lollms_server.core.backend_http import (
    DEFAULT_MAX_CONNECTIONS,
    BackendAnswerError,
    BackendClient,
    BackendStatusError,
    BackendTransportError,
)
from lollms_server.core.bindings import Binding, token_usage
from lollms_server.core.errors import BadRequestError, LollmsError, NotFoundError
from lollms_server.core.relay import add_relay_header
from lollms_server.core.remote import (
    RetryPolicy,
    backend_failure,
    call_with_retries,
    error_for_answer,
    error_for_status,
    error_for_transport,
    stream_with_retries,
)

from .audio import (
    AUDIO_TASKS,
    SPEECH_TASK,
    TRANSCRIPTION_TASK,
    speech_arguments,
    speech_output,
    transcription_arguments,
    transcription_output,
)
from .images import DEFAULT_IMAGE_MODELS, IMAGE_TASKS, INPUT_ROLES, edit_files, image_arguments, image_outputs
from .messages import VISION_MODEL, ToolCallPieces, chat_messages, message_calls, request_options

OFFICIAL_BASE_URL = "https://api.openai.com/v1"
MODEL_LIST_TTL = 60.0
HEALTH_TIMEOUT = 10.0
# Keys under which compatible servers report a model's context size in their model list.
CONTEXT_KEYS = ("context_length", "context_window", "max_model_len", "max_context_length", "n_ctx_train")


def _retry_after(exc: openai.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None


class OpenAIBinding(Binding):
    binding_type_name = "openai_binding"
    input_modalities = ("text", "image", "audio")
    output_modalities = ("text", "image", "audio")
    tasks = ("ttt", "tti", "i2i", "tts", "stt")
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.policy = RetryPolicy.from_config(config)
        self.official = not config.get("base_url")
        self._api_key = config.get("api_key") or os.environ.get("OPENAI_API_KEY")
        self._secrets = [self._api_key] if self._api_key else []
        self.client = openai.AsyncOpenAI(
            api_key=self._api_key or "not-needed",
            base_url=config.get("base_url") or None,
            organization=config.get("organization") or None,
            timeout=self.policy.timeout,
            max_retries=0,  # our RetryPolicy retries, and never after the first streamed byte
            # The SDK's own client (its limits and redirects), with the relay header on every request.
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [add_relay_header]}),
        )
        headers = {
            "Authorization": f"Bearer {self._api_key or 'not-needed'}",
            "User-Agent": f"lollms_server/{__version__}",
        }
        if config.get("organization"):
            headers["OpenAI-Organization"] = str(config["organization"])
        self.http = BackendClient(
            config.get("base_url") or OFFICIAL_BASE_URL,
            headers,
            self.policy.timeout,
            max_connections=int(config.get("max_connections") or DEFAULT_MAX_CONNECTIONS),
        )
        self.backend_url = self.http.base_url
        self._models: tuple[float, dict[str, dict[str, Any]]] | None = None
        self.image_models = frozenset(config.get("image_models", DEFAULT_IMAGE_MODELS))
        self.default_image_model: str | None = config.get("default_image_model") or None
        self.default_audio_models = {
            SPEECH_TASK: config.get("default_speech_model") or "tts-1",
            TRANSCRIPTION_TASK: config.get("default_transcription_model") or "whisper-1",
        }
        self.default_voice = str(config.get("default_voice") or "alloy")

    # --- capabilities ----------------------------------------------------------------------------------
    def _takes_images(self, model_name: str | None) -> bool:
        setting = self.config.get("vision", "auto")
        return setting == "always" or (setting == "auto" and bool(model_name and VISION_MODEL.search(model_name)))

    def supports_structured_output(self) -> bool:
        return True  # passed on as the backend's own response_format

    def _draws(self, model_name: str | None) -> bool:
        """Whether the model is served by the images API (it is one of ``image_models``)."""
        return model_name in self.image_models

    def default_model_for(self, task: str) -> str | None:
        if task in IMAGE_TASKS and not self._draws(self.default_model_name):
            return self.default_image_model
        return self.default_audio_models.get(task)

    def _api_for(self, model: str | None, request_info: dict[str, Any]) -> bool:
        """Whether ``model`` goes to the images API; BadRequestError when the request's task disagrees."""
        draws = self._draws(model)
        task = request_info.get("generation_type")  # absent for callers outside the pipeline: the model decides
        if task in IMAGE_TASKS and not draws:
            raise BadRequestError(
                f"binding '{self.binding_instance_name}': model '{model}' does not make images; name one of "
                f"{', '.join(sorted(self.image_models))} with model_name, or set the instance's default_image_model"
            )
        if task is not None and task not in IMAGE_TASKS and draws:
            raise BadRequestError(
                f"binding '{self.binding_instance_name}': model '{model}' makes images: "
                f"use generation_type 'tti' (or 'i2i' with an input_image), not '{task}'"
            )
        return draws

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        if data_type == "audio":  # for transcription models; the backend says if the model cannot listen
            return role == "input_audio"
        if self._draws(model_name):
            return data_type == "text" or (data_type == "image" and role in INPUT_ROLES)
        return data_type == "text" or (data_type == "image" and self._takes_images(model_name))

    # --- errors ----------------------------------------------------------------------------------------
    def _classify(self, exc: Exception) -> LollmsError:
        name = self.binding_instance_name
        if isinstance(exc, BackendStatusError):
            models = self._models[1] if self._models else None
            return error_for_status(name, exc.status, exc.text, self._secrets, exc.retry_after, models=models)
        if isinstance(exc, BackendTransportError):
            return error_for_transport(name, exc.cause_name, timed_out=exc.timed_out)
        if isinstance(exc, BackendAnswerError):
            return error_for_answer(name, exc.expected, self._secrets, content_type=exc.content_type, body=exc.body)
        if isinstance(exc, openai.APITimeoutError):
            return error_for_transport(name, exc, timed_out=True)
        if isinstance(exc, openai.APIConnectionError):
            return error_for_transport(name, exc, timed_out=False)
        if isinstance(exc, openai.APIStatusError):
            models = self._models[1] if self._models else None
            return error_for_status(name, exc.status_code, exc.message, self._secrets, _retry_after(exc), models=models)
        if isinstance(exc, openai.APIError):  # an error event inside a stream
            return backend_failure(name, "the backend reported an error in its answer", exc.message, self._secrets)
        return backend_failure(
            name,
            f"the backend sent an answer that could not be read ({type(exc).__name__})",
            f"{type(exc).__name__}: {exc}",
            self._secrets,
        )

    def _parsed(self, raw: Any) -> Any:
        """The SDK's object for a raw answer; our error naming what came back when it is not JSON (the SDK
        hands an HTML page, or an event stream answering a plain call, back as a ``str``)."""
        content_type = raw.headers.get("content-type")
        try:
            parsed = raw.parse()
        except (AttributeError, TypeError, ValueError):  # a model list that is not JSON: the SDK trips on it
            parsed = None
        if parsed is None or isinstance(parsed, str):
            raise error_for_answer(self.binding_instance_name, "JSON", self._secrets, content_type=content_type)
        return parsed

    # --- models ----------------------------------------------------------------------------------------
    async def _model_list(self) -> dict[str, dict[str, Any]]:
        if self._models and time.monotonic() - self._models[0] < MODEL_LIST_TTL:
            return self._models[1]

        models = await call_with_retries(self._fetch_models, self.policy, self._classify)
        self._models = (time.monotonic(), models)
        return models

    async def _fetch_models(self, timeout: float | None = None) -> dict[str, dict[str, Any]]:
        page = await self.http.get_json("/models", timeout=timeout)
        listed = page.get("data") if isinstance(page, dict) else None
        if not isinstance(listed, list):
            raise BackendAnswerError("a model list", "application/json")
        return {str(model["id"]): model for model in listed if isinstance(model, dict) and model.get("id")}

    def _describe(self, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        reported = next((int(raw[key]) for key in CONTEXT_KEYS if isinstance(raw.get(key), int)), None)
        return {
            "name": name,
            "context_size": reported or int(self.config.get("context_size", 4096)),
            "supports_vision": self._takes_images(name),
            "supports_audio": False,
            "details": {
                "model_type": "tti" if self._draws(name) else "ttt",
                "owned_by": raw.get("owned_by"),
                "created": raw.get("created"),
                "context_size_source": "server" if reported else "configured",
            },
        }

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = model_name or self.default_model_name
        try:
            models = await self._model_list()
        except LollmsError:
            return name  # the backend cannot list right now; the generation will say what is wrong
        if name not in models:
            raise NotFoundError(
                f"model '{name}' not found on binding '{self.binding_instance_name}' "
                f"(available: {', '.join(sorted(models)) or 'none'})"
            )
        return name

    async def list_available_models(self) -> list[dict[str, Any]]:
        return [self._describe(name, raw) for name, raw in sorted((await self._model_list()).items())]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = model_name or self.default_model_name or ""
        models = await self._model_list()
        if name not in models:
            raise NotFoundError(f"model '{name}' not found on binding '{self.binding_instance_name}'")
        described = self._describe(name, models[name])
        return {
            "model_name": name,
            "model_type": described["details"]["model_type"],
            "context_size": described["context_size"],
            "max_output_tokens": None,
            "supports_vision": described["supports_vision"],
            "supports_audio": False,
            "supports_streaming": True,
            "details": described["details"],
        }

    async def load_model(self, model_name: str) -> bool:
        self.model_name = model_name
        return True

    async def unload_model(self) -> bool:
        self.model_name = None  # nothing is loaded here (the server holds the models): the connections are closed
        await self.http.close()
        return True

    async def health_check(self) -> tuple[bool, str]:
        if self.official and not self._api_key:
            return False, "no api_key configured (and OPENAI_API_KEY is not set)"
        try:
            await self._fetch_models(timeout=min(self.policy.timeout, HEALTH_TIMEOUT))
        except LollmsError as exc:
            return False, str(exc)
        except Exception as exc:
            return False, str(self._classify(exc))
        return True, "ok"

    # --- generation ------------------------------------------------------------------------------------
    def _create_arguments(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], images: list[Any] | None
    ) -> dict[str, Any]:
        return {
            "model": request_info.get("model_name") or self.default_model_name,
            "messages": chat_messages(request_info, prompt, images or []),
            **request_options(params, self.official),
        }

    async def _images(self, model: str, prompt: str, params: dict[str, Any], inputs: list[Any]) -> list[dict[str, Any]]:
        """Images from the images API: an edit when the request carries images, a generation otherwise."""
        files = await anyio.to_thread.run_sync(edit_files, inputs, self.input_limits) if inputs else None
        arguments = image_arguments(model, prompt, params, self.config, self.binding_instance_name, files is not None)

        async def create() -> Any:
            if files is not None:
                return self._parsed(await self.client.images.with_raw_response.edit(**arguments, **files))
            return self._parsed(await self.client.images.with_raw_response.generate(**arguments))

        response = await call_with_retries(create, self.policy, self._classify)
        outputs = image_outputs(response, model)
        if outputs is None:
            raise backend_failure(
                self.binding_instance_name,
                "the backend answered without a base64 image (b64_json was asked for)",
                f"{len(response.data or [])} images, none with b64_json",
                self._secrets,
            )
        return outputs

    async def _audio(
        self, model: str, prompt: str, params: dict[str, Any], request_info: dict[str, Any], items: list[Any]
    ) -> dict[str, Any]:
        """Speech (audio.speech) or a transcript (audio.transcriptions, or .translations when asked)."""
        if request_info.get("generation_type") == SPEECH_TASK:
            arguments = speech_arguments(model, prompt, params, self.default_voice)

            async def speak() -> Any:
                return self._parsed(await self.client.audio.speech.with_raw_response.create(**arguments))

            response = await call_with_retries(speak, self.policy, self._classify)
            return speech_output(response.read(), model, arguments)
        arguments = await anyio.to_thread.run_sync(transcription_arguments, model, params, items)  # decodes the audio
        endpoint = self.client.audio.translations if params.get("translate") else self.client.audio.transcriptions

        async def listen() -> Any:
            return self._parsed(await endpoint.with_raw_response.create(**arguments))

        return transcription_output(await call_with_retries(listen, self.policy, self._classify), model, params)

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> dict[str, Any] | list[dict[str, Any]]:
        model = request_info.get("model_name") or self.default_model_name
        if request_info.get("generation_type") in AUDIO_TASKS:
            return [await self._audio(str(model), prompt, params, request_info, multimodal_data or [])]
        if self._api_for(model, request_info):
            return await self._images(str(model), prompt, params, multimodal_data or [])
        arguments = self._create_arguments(prompt, params, request_info, multimodal_data)

        async def create() -> dict[str, Any]:
            completion = await self.http.post_json("/chat/completions", arguments)
            if not isinstance(completion, dict) or "choices" not in completion:
                raise BackendAnswerError("a chat completion", "application/json")
            return completion

        completion = await call_with_retries(create, self.policy, self._classify)
        choices = completion.get("choices") or [{}]
        choice: dict[str, Any] = choices[0] if isinstance(choices[0], dict) else {}
        message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
        answer = {
            "type": "text",
            "data": message.get("content") or "",
            "thoughts": _reasoning(message),
            "metadata": {
                "model": completion.get("model") or arguments["model"],
                "usage": _usage(completion),
                "finish_reason": choice.get("finish_reason") or "stop",
            },
        }
        return [answer, *message_calls(message)]

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        model = request_info.get("model_name") or self.default_model_name
        if request_info.get("generation_type") in AUDIO_TASKS:  # answered whole: it comes in the final event
            output = await self._audio(str(model), prompt, params, request_info, multimodal_data or [])
            yield {"type": "final", "content": [output], "metadata": {"model": model}}
            return
        if self._api_for(model, request_info):  # the images API does not stream: its images come in the final event
            images = await self._images(str(model), prompt, params, multimodal_data or [])
            yield {"type": "final", "content": images, "metadata": {"model": model}}
            return
        arguments = self._create_arguments(prompt, params, request_info, multimodal_data)

        body = {**arguments, "stream": True, "stream_options": {"include_usage": True}}

        async def open_stream() -> AsyncIterator[Any]:
            return await self.http.open_events("/chat/completions", body)

        pieces = 0
        usage: dict[str, Any] | None = None
        finish_reason = None
        calls = ToolCallPieces()  # a call is passed on whole, once its pieces are all in
        async for chunk in stream_with_retries(open_stream, self.policy, self._classify):
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):  # an error event inside the stream
                raise backend_failure(
                    self.binding_instance_name,
                    "the backend reported an error in its answer",
                    str(chunk["error"]),
                    self._secrets,
                )
            usage = _usage(chunk) or usage
            choices = chunk.get("choices")
            if not choices or not isinstance(choices[0], dict):
                continue
            choice = choices[0]
            finish_reason = choice.get("finish_reason") or finish_reason
            delta = choice.get("delta") or {}
            content, thoughts = delta.get("content"), _reasoning(delta)
            if delta.get("tool_calls"):
                calls.add(delta["tool_calls"])
            if content or thoughts:
                pieces += 1
                yield {"type": "chunk", "content": content or "", "thoughts": thoughts}
        for event in calls.events():
            yield event
        if usage is None:  # servers that ignore include_usage: count what came
            usage = token_usage(None, pieces)
        yield {
            "type": "final",
            "content": None,
            "metadata": {"model": arguments["model"], "usage": usage, "finish_reason": finish_reason or "stop"},
        }


def _reasoning(message: dict[str, Any]) -> str | None:
    """Reasoning text of servers that send it apart (DeepSeek, vLLM: reasoning_content; others: reasoning)."""
    value = message.get("reasoning_content") or message.get("reasoning")
    return value if isinstance(value, str) and value else None


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def _usage(answer: dict[str, Any]) -> dict[str, Any] | None:
    """The token counts of an answer (or of a stream's usage chunk), None when it has none."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return None
    return {field: usage.get(field) for field in USAGE_FIELDS}
