"""gemini_binding: Google Gemini models through the google-genai SDK's async client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from lollms_server.core.bindings import Binding
from lollms_server.core.errors import BadRequestError, LollmsError, NotFoundError
from lollms_server.core.remote import RetryPolicy

from .catalog import (
    EXAMPLE_MODEL,
    ModelCatalog,
    accepts_images,
    bare_name,
    describe,
    is_imagen,
    is_tts,
    outputs_images,
    thinks,
)

if TYPE_CHECKING:
    from .backend import GeminiBackend
    from .messages import GeminiRequest

logger = logging.getLogger(__name__)

API_KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # in the SDK's order of precedence
CONVERSATION_ROLES = ("user_prompt", "assistant_reply", "system_context")
MODEL_NAME = re.compile(r"^(tunedModels/)?[A-Za-z0-9._-]+$")
MAX_NAMES_IN_ERRORS = 25
IMAGE_TASKS = ("tti", "i2i")  # generation types whose answer must hold an image


def resolve_api_key(configured: str | None) -> str | None:
    """The instance's api_key, else the first of API_KEY_VARIABLES that is set."""
    for value in (configured, *(os.environ.get(name) for name in API_KEY_VARIABLES)):
        if value and value.strip():
            return value.strip()
    return None


class GeminiBinding(Binding):
    binding_type_name = "gemini_binding"
    input_modalities = ("text", "image", "audio")
    output_modalities = ("text", "image", "audio")
    tasks = ("ttt", "tti", "i2i", "tts", "stt")
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        # Imported here, not at module level: discovery imports every zoo binding and google-genai takes
        # ~0.4 s to import; only servers with a Gemini instance pay for it.
        from .backend import GeminiBackend

        self.default_model_name = bare_name(self.default_model_name or "") or None
        self.include_thoughts = bool(config.get("include_thoughts", True))
        self.catalog = ModelCatalog()
        self.backend: GeminiBackend = GeminiBackend(
            self.binding_instance_name,
            resolve_api_key(config.get("api_key")),
            config.get("base_url"),
            RetryPolicy.from_config(config),
            list(config.get("safety_settings") or []),
            known_models=lambda: self.catalog.models,
        )
        self._catalog_lock = asyncio.Lock()

    # --- capabilities ------------------------------------------------------------------------------
    def supports_input_role(self, data_type: str, role: str) -> bool:
        return role in CONVERSATION_ROLES if data_type == "text" else data_type == "image"

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        if data_type == "audio":  # transcription: Gemini models listen (not the TTS or image-only ones)
            return role == "input_audio" and accepts_images(bare_name(model_name or self.default_model_name or ""))
        if data_type == "image":  # Gemini has no mask: an inpainting request is refused, not half-done
            return role != "mask_image" and accepts_images(bare_name(model_name or self.default_model_name or ""))
        return self.supports_input_role(data_type, role)

    async def health_check(self) -> tuple[bool, str]:
        if not self.backend.api_key:
            names = " / ".join(API_KEY_VARIABLES)
            return False, f"no api_key: set it in the instance file or in the {names} environment variable"
        try:
            await self.backend.probe()
        except LollmsError as exc:
            return False, str(exc)
        return True, "ok"

    # --- models --------------------------------------------------------------------------------------
    async def _known_models(self) -> dict[str, Any] | None:
        """The backend's models (cached for a minute), or None when it cannot list them right now."""
        async with self._catalog_lock:
            if not self.catalog.fresh():
                try:
                    self.catalog.store(await self.backend.list_models(quick=True))
                except LollmsError as exc:
                    logger.info(
                        "%s: cannot list models (%s); model names are taken as given", self.binding_instance_name, exc
                    )
                    return None
        return self.catalog.models

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = bare_name(model_name or self.model_name or self.default_model_name or "")
        if not name:
            raise BadRequestError(f"binding '{self.binding_instance_name}': no model named and no default_model")
        if not MODEL_NAME.match(name):
            raise NotFoundError(f"model '{name}' not found: not a Gemini model name")
        if name.startswith("tunedModels/"):  # the models list holds base models only
            return name
        models = await self._known_models()
        if models is not None and name not in models:
            names = sorted(models)
            available = ", ".join(names[:MAX_NAMES_IN_ERRORS]) + (", ..." if len(names) > MAX_NAMES_IN_ERRORS else "")
            raise NotFoundError(
                f"model '{name}' not found on binding '{self.binding_instance_name}' (available: {available or 'none'})"
            )
        return name

    async def list_available_models(self) -> list[dict[str, Any]]:
        self.catalog.store(await self.backend.list_models())
        return [describe(model) for model in self.catalog.models.values()]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = bare_name(model_name or self.model_name or self.default_model_name or "")
        info = describe(await self.backend.get_model(name))
        return {"model_name": info.pop("name"), "supports_streaming": not is_imagen(name), **info}

    async def load_model(self, model_name: str) -> bool:
        self.model_name = await self.resolve_model(model_name)
        return True

    async def unload_model(self) -> bool:
        self.model_name = None
        await self.backend.aclose()
        return True

    # --- generation ----------------------------------------------------------------------------------
    def _prepare(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], multimodal: list[Any] | None
    ) -> tuple[str, GeminiRequest]:
        model = bare_name(request_info.get("model_name") or self.model_name or self.default_model_name or "")
        messages = request_info.get("messages") or [{"role": "user", "content": prompt}]
        thoughts = self.include_thoughts and thinks(model, self.catalog.get(model))
        if request_info.get("generation_type") in IMAGE_TASKS and not outputs_images(model):
            raise BadRequestError(
                f"binding '{self.binding_instance_name}': model '{model}' does not generate images; use a Gemini "
                f"image model such as {EXAMPLE_MODEL} or an Imagen model"
            )
        return model, self.backend.request(model, messages, multimodal, params, thoughts)

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        speech = await self._speech(prompt, params, request_info, multimodal_data)
        if speech is not None:
            return [speech]
        imagen = self._imagen_request(prompt, params, request_info)
        if imagen is not None:
            return await self.backend.predict_images(*imagen)
        model, request = self._prepare(prompt, params, request_info, multimodal_data)
        return await self.backend.generate(model, request)

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        speech = await self._speech(prompt, params, request_info, multimodal_data)
        if speech is not None:  # speech and transcripts come whole, in the final chunk
            yield {"type": "final", "content": [speech], "metadata": {"model": speech["metadata"]["model"]}}
            return
        imagen = self._imagen_request(prompt, params, request_info)
        if imagen is not None:  # Imagen does not stream: its images come in the final chunk
            outputs = await self.backend.predict_images(*imagen)
            yield {"type": "final", "content": outputs, "metadata": {"model": imagen[0]}}
            return
        model, request = self._prepare(prompt, params, request_info, multimodal_data)
        # Closed explicitly when our consumer stops early, so the HTTP stream to Google closes at once.
        async with contextlib.aclosing(self.backend.stream(model, request)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _speech(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any], items: list[Any] | None
    ) -> dict[str, Any] | None:
        """Speech (tts, with a Gemini TTS model) or a transcript (stt), else None."""
        task = request_info.get("generation_type")
        model = bare_name(request_info.get("model_name") or self.model_name or self.default_model_name or "")
        if task == "tts":
            if not is_tts(model):
                raise BadRequestError(
                    f"binding '{self.binding_instance_name}': model '{model}' does not speak; use a Gemini TTS model "
                    "such as gemini-2.5-flash-preview-tts"
                )
            return await self.backend.speak(model, prompt, params)
        if is_tts(model) and task not in (None, "tts"):
            raise BadRequestError(
                f"binding '{self.binding_instance_name}': model '{model}' only speaks (generation_type 'tts')"
            )
        if task == "stt":
            return await self.backend.transcribe(model, items or [], params)
        return None

    def _imagen_request(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """(model, :predict body) when the request goes to an Imagen model, else None."""
        model = bare_name(request_info.get("model_name") or self.model_name or self.default_model_name or "")
        if not is_imagen(model):
            return None
        from .images import imagen_body  # google-genai's types: imported once a request needs them

        generation_type = str(request_info.get("generation_type") or "ttt")
        return model, imagen_body(self.binding_instance_name, model, prompt, params, generation_type)
