"""diffusers_binding: text-to-image, image-to-image and inpainting in-process with diffusers and torch.

One loaded model serves the three tasks (the variants share its weights through ``from_pipe``). Loading
and denoising run in worker threads inside a compute slot, one generation per loaded model at a time;
loaded models are registered with the server's model residency (``resource_manager.models``), so
``max_loaded_models`` and ``keep_alive`` apply and unloading frees their memory.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import logging
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from lollms_server.core.bindings import Binding, final_outputs
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError

from .images import INPUT_ROLES, ImageInputs, png_output, read_inputs
from .models import DiffusersModel, ModelCatalog
from .parameters import Caps, ImageRequest, check_pixels, parse_parameters
from .pipelines import LoadedPipeline, LoadSettings, denoise, load
from .runner import Done, Step, run_with_progress
from .video import VIDEO_TASK, encode_video, make_video, parse_video

logger = logging.getLogger(__name__)

MAX_SEED = 2**63 - 1


class DiffusersBinding(Binding):
    binding_type_name = "diffusers_binding"
    input_modalities = ("text", "image")
    output_modalities = ("image", "video")
    tasks = ("tti", "i2i", "ttv")
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._loaded: dict[str, LoadedPipeline] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # one generation per loaded model at a time
        self._load_lock = asyncio.Lock()

    @property
    def catalog(self) -> ModelCatalog:
        return ModelCatalog(self.models_folder, self.default_model_name, bool(self.config.get("allow_download")))

    @property
    def caps(self) -> Caps:
        return Caps(
            max_image_pixels=int(self.config.get("max_image_pixels") or 1024 * 1024),
            max_inference_steps=int(self.config.get("max_inference_steps") or 100),
            max_images_per_request=int(self.config.get("max_images_per_request") or 4),
            setting="the instance's ",
        )

    @property
    def _residency(self) -> Any:
        return self.resource_manager.models

    # --- capabilities ------------------------------------------------------------------------------
    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}  # local compute: admitted by the resource manager, GPU or not

    def supports_input_role(self, data_type: str, role: str) -> bool:
        return data_type == "image" and role in INPUT_ROLES

    def settings_problem(self) -> str | None:
        """The packages installed, and a configured default model one this instance can load (what the start and
        `lollms-server check-config` both ask)."""
        for package in ("torch", "diffusers", "transformers"):
            if importlib.util.find_spec(package) is None:
                return f"{package} is not installed (pip install 'lollms-server[diffusers]')"
        if self.default_model_name:
            try:
                self.catalog.resolve(None)
            except Exception as exc:
                return f"default model unavailable: {exc}"
        return None

    # --- models --------------------------------------------------------------------------------------
    async def resolve_model(self, model_name: str | None) -> str | None:
        return (await anyio.to_thread.run_sync(self.catalog.resolve, model_name)).name

    def residency_key(self, model_name: str | None) -> Any:
        return (self.binding_instance_name, ("pipeline", self.catalog.resolve(model_name).location))

    async def list_available_models(self) -> list[dict[str, Any]]:
        return await anyio.to_thread.run_sync(self.catalog.list_models)

    async def load_model(self, model_name: str) -> bool:
        async with self._using(self.catalog.resolve(model_name)):
            return True

    async def unload_model(self) -> bool:
        await self._residency.unload(self.binding_instance_name)
        return True

    def _load_settings(self) -> LoadSettings:
        threads = self.config.get("num_threads")
        return LoadSettings(
            device=str(self.config.get("device") or "auto"),
            dtype=str(self.config.get("dtype") or "auto"),
            cpu_offload=bool(self.config.get("cpu_offload")),
            attention_slicing=bool(self.config.get("attention_slicing")),
            num_threads=int(threads) if threads else None,
        )

    @asynccontextmanager
    async def _using(self, model: DiffusersModel) -> AsyncIterator[LoadedPipeline]:
        """The loaded copy of ``model``, loading it (within the residency limits) if needed; it stays loaded
        at least until the body ends."""
        residency_key = (self.binding_instance_name, ("pipeline", model.location))
        async with self._load_lock:
            loaded = self._loaded.get(model.location) if self._residency.is_loaded(residency_key) else None
            if loaded is not None:
                self._residency.enter(residency_key)
            else:
                limit = int(self.config.get("max_loaded_models") or 1)
                async with self._residency.loading(self.binding_instance_name, limit):
                    settings = self._load_settings()
                    async with self.resource_manager.acquire_gpu_resource(
                        f"load {model.name} on {self.binding_instance_name}"
                    ):
                        loaded = await run_compute(load, model, settings)
                    self._loaded[model.location] = loaded
                    self._locks[model.location] = asyncio.Lock()
                    keep_alive = float(self.config.get("keep_alive", 300))
                    self._residency.add(
                        residency_key,
                        self._unloader(loaded),
                        keep_alive if keep_alive >= 0 else None,
                        name=model.name,
                    )
                logger.info(
                    "Loaded %s on %s (%s, %s)", model.name, self.binding_instance_name, loaded.device, loaded.dtype
                )
        try:
            yield loaded
        finally:
            await self._residency.leave(residency_key)

    def _unloader(self, loaded: LoadedPipeline) -> Callable[[], Any]:
        location = loaded.model.location

        async def unload() -> None:
            lock = self._locks.get(location) or asyncio.Lock()
            if self._loaded.get(location) is loaded:
                del self._loaded[location]
            async with lock:  # never free a pipeline a thread is still using
                await run_compute(loaded.release)

        return unload

    def loaded_models(self) -> list[str]:
        return [loaded.model.name for loaded in self._loaded.values()]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        model = await anyio.to_thread.run_sync(self.catalog.resolve, model_name)
        loaded = self._loaded.get(model.location)
        return {
            "model_name": model.name,
            "model_type": "tti",
            "context_size": None,
            "max_output_tokens": None,
            "supports_vision": False,
            "supports_audio": False,
            "supports_streaming": True,
            "details": {
                "format": "diffusers",
                "source": model.source,
                "tasks": ["text_to_image", "image_to_image", "inpainting"],
                "loaded": loaded is not None,
                "device": loaded.device if loaded else None,
                "dtype": loaded.dtype if loaded else None,
                "default_size": list(loaded.default_size) if loaded else None,
                "denoising_steps_total": loaded.steps_run if loaded else 0,
                "images_total": loaded.images_made if loaded else 0,
                **self.caps.__dict__,
            },
        }

    # --- generation ----------------------------------------------------------------------------------
    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await final_outputs(self._generate(prompt, params, request_info, multimodal_data))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        async for event in self._generate(prompt, params, request_info, multimodal_data):
            yield event

    @staticmethod
    def _seeds(parsed: ImageRequest) -> list[int]:
        first = parsed.seed if parsed.seed is not None and parsed.seed >= 0 else secrets.randbelow(2**31)
        return [(first + index) % (MAX_SEED + 1) for index in range(parsed.n)]

    def _size(self, parsed: ImageRequest, inputs: ImageInputs, loaded: LoadedPipeline) -> tuple[int, int]:
        if inputs.image is not None:
            return inputs.image.size
        size = (parsed.width, parsed.height) if parsed.width and parsed.height else None
        if size is None:
            width, height = loaded.default_size
            size = (parsed.width or width, parsed.height or height)
            check_pixels("the image size", *size, self.caps)
        return size

    async def _generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        if request_info.get("generation_type") == "ttv":
            async for event in self._video(prompt, params, request_info):
                yield event
            return
        caps = self.caps
        parsed = parse_parameters(params, caps)
        requested = (parsed.width, parsed.height) if parsed.width and parsed.height else None
        inputs = await anyio.to_thread.run_sync(read_inputs, multimodal_data, caps, requested)
        if inputs.image is not None and int(parsed.num_inference_steps * parsed.strength) < 1:
            raise BadRequestError(
                f"num_inference_steps x strength must be at least 1 ({parsed.num_inference_steps} x "
                f"{parsed.strength}): the input image would not change"
            )
        model = await anyio.to_thread.run_sync(self.catalog.resolve, request_info.get("model_name"))
        seeds = self._seeds(parsed)
        residency_key = (self.binding_instance_name, ("pipeline", model.location))
        images: list[Any] = []
        async with self.resource_manager.acquire_gpu_resource(
            f"generate on {self.binding_instance_name}", model=residency_key
        ):
            async with self._using(model) as loaded, self._locks[model.location]:
                size = self._size(parsed, inputs, loaded)

                def call(on_step_end: Callable[..., Any]) -> list[Any]:
                    def counted(pipe: Any, step: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                        result = on_step_end(pipe, step, timestep, kwargs)  # raises when nobody waits any more
                        loaded.steps_run += 1
                        return result

                    return denoise(loaded, prompt, parsed, inputs, seeds, size, counted)

                async for event in run_with_progress(call):
                    if isinstance(event, Step):
                        yield {
                            "type": "info",
                            "content": f"step {event.step} of {event.total}",
                            "metadata": {"step": event.step, "total_steps": event.total, "task": inputs.task},
                        }
                    elif isinstance(event, Done):
                        images = event.result
        described = {
            "task": inputs.task,
            "width": size[0],
            "height": size[1],
            "num_inference_steps": parsed.num_inference_steps,
            "guidance_scale": parsed.guidance_scale,
            "scheduler": parsed.scheduler,
            **({"strength": parsed.strength} if inputs.image is not None else {}),
        }
        outputs = [
            await anyio.to_thread.run_sync(png_output, image, {**described, "seed": seed, "index": index})
            for index, (image, seed) in enumerate(zip(images, seeds, strict=True))
        ]
        yield {"type": "final", "content": outputs, "metadata": {"model": model.name, "task": inputs.task}}

    async def _video(
        self, prompt: str, params: dict[str, Any], request_info: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A video from a prompt with a video pipeline (TextToVideoSD, AnimateDiff...): frames, then encoded."""
        request = parse_video(params, int(self.config.get("max_frames") or 64))
        model = await anyio.to_thread.run_sync(self.catalog.resolve, request_info.get("model_name"))
        seed = request.seed if request.seed is not None and request.seed >= 0 else secrets.randbelow(2**31)
        residency_key = (self.binding_instance_name, ("pipeline", model.location))
        frames: Any = None
        async with self.resource_manager.acquire_gpu_resource(
            f"generate on {self.binding_instance_name}", model=residency_key
        ):
            async with self._using(model) as loaded, self._locks[model.location]:
                if not loaded.makes_video:
                    raise BadRequestError(f"model '{model.name}' makes images, not videos: name a text-to-video model")
                width, height = loaded.default_size
                size = (request.width or width, request.height or height)
                check_pixels("each frame", *size, self.caps)

                def call(on_step_end: Callable[..., Any]) -> Any:
                    return make_video(loaded.pipelines[VIDEO_TASK], prompt, request, size, seed, on_step_end)

                async for event in run_with_progress(call):
                    if isinstance(event, Step):
                        yield {
                            "type": "info",
                            "content": f"step {event.step} of {event.total}",
                            "metadata": {"step": event.step, "total_steps": event.total, "task": VIDEO_TASK},
                        }
                    elif isinstance(event, Done):
                        frames = event.result
        data, mime = await anyio.to_thread.run_sync(encode_video, frames, request.fps, request.video_format)
        metadata = {
            "model": model.name,
            "task": VIDEO_TASK,
            "width": size[0],
            "height": size[1],
            "num_frames": len(frames),
            "fps": request.fps,
            "seconds": round(len(frames) / request.fps, 3),
            "seed": seed,
            "format": request.video_format,
        }
        output = {
            "type": "video",
            "data": base64.b64encode(data).decode("ascii"),
            "mime_type": mime,
            "metadata": metadata,
        }
        yield {"type": "final", "content": [output], "metadata": {"model": model.name, "task": VIDEO_TASK}}
