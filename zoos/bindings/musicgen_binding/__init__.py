"""musicgen_binding: text-to-music with MusicGen through transformers, in process.

Durations become tokens (the audio codec's frame rate, plus the codebooks' delay), generation runs in a worker
thread inside a compute slot, one per loaded model at a time; a stopping criterion reports progress (``info``
events when streaming) and stops the work at the next step when the client has left."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import AsyncGenerator
from typing import Any

import anyio

from lollms_server.core.audio_files import audio_output, encode, resample
from lollms_server.core.bindings import Binding, final_outputs
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError
from lollms_server.core.local_models import FolderModels, LoadedModels, torch_device
from lollms_server.core.thread_stream import Emit, stream_from_thread

PROGRESS_STEPS = 20  # progress events per generation, at most


class Stopped(Exception):
    """Raised inside generate() (from the stopping criterion) when nobody waits for the music any more."""


class MusicgenBinding(FolderModels, Binding):
    binding_type_name = "musicgen_binding"
    input_modalities = ("text",)
    output_modalities = ("audio",)
    tasks = ("ttm",)
    streams = True
    model_kind = "musicgen"
    model_format = "transformers"

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self._loaded: LoadedModels[tuple[Any, Any, str]] = LoadedModels()  # (model, processor, device)
        self.steps_run = 0  # generation steps made, all requests together (get_model_info shows it)

    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = await self.resolve_model(model_name)
        return {
            "model_name": name,
            "model_type": "ttm",
            "supports_streaming": True,
            "details": {"steps_run": self.steps_run},
        }

    async def load_model(self, model_name: str) -> bool:
        await self._model(model_name)
        return True

    async def unload_model(self) -> bool:
        self._loaded.clear()
        return True

    async def _model(self, name: str) -> tuple[Any, Any, str]:
        async def load() -> tuple[Any, Any, str]:
            path = await anyio.to_thread.run_sync(self.folder.path, name)
            device = torch_device(str(self.config.get("device") or "auto"))

            def build() -> tuple[Any, Any, str]:
                from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

                model = MusicgenForConditionalGeneration.from_pretrained(path, local_files_only=True).to(device)
                return model.eval(), MusicgenProcessor.from_pretrained(path, local_files_only=True), device

            async with self.resource_manager.acquire_gpu_resource(f"load {name} on {self.binding_instance_name}"):
                return await run_compute(build)

        return await self._loaded.get(name, load)

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await final_outputs(self.generate_stream(prompt, params, request_info, multimodal_data))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Progress ``info`` events, then the music in the final chunk."""
        if not prompt.strip():
            raise BadRequestError("describe the music in the user_prompt")
        duration = float(params.get("duration") or self.config.get("default_duration") or 8.0)
        limit = float(self.config.get("max_duration") or 30.0)
        if duration > limit:
            raise BadRequestError(
                f"duration {duration:g} s is over binding '{self.binding_instance_name}''s limit of {limit:g} s "
                "(max_duration)"
            )
        name = str(request_info.get("model_name") or self.default_model_name)
        model, processor, device = await self._model(name)
        audio_format = str(params.get("audio_format") or self.config.get("default_format") or "wav")
        seed = params.get("seed")

        binding = self

        def work(emit: Emit, stop: threading.Event) -> None:
            import torch
            from transformers import StoppingCriteria, StoppingCriteriaList

            codec = model.config.audio_encoder
            rate = int(codec.sampling_rate)
            steps = math.ceil(duration * codec.frame_rate) + int(model.config.decoder.num_codebooks)
            every = max(1, steps // PROGRESS_STEPS)

            class Progress(StoppingCriteria):
                def __init__(self) -> None:
                    self.step = 0

                def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                    if stop.is_set():
                        raise Stopped
                    self.step += 1
                    binding.steps_run += 1
                    if self.step % every == 0 or self.step == steps:
                        emit({"step": self.step, "total": steps})
                    return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

            if seed is not None and seed >= 0:
                torch.manual_seed(int(seed))
            inputs = processor(text=[prompt], padding=True, return_tensors="pt").to(device)
            options: dict[str, Any] = {"do_sample": True, "max_new_tokens": steps}
            for key in ("guidance_scale", "temperature", "top_k"):
                if params.get(key) is not None:
                    options[key] = params[key]
            with torch.inference_mode():
                audio = model.generate(**inputs, stopping_criteria=StoppingCriteriaList([Progress()]), **options)
            samples = audio[0, 0].float().cpu().numpy()[: round(duration * rate)]
            out_rate = int(params.get("sample_rate") or rate)
            samples = resample(samples, rate, out_rate)
            data, mime = encode(samples, out_rate, audio_format)
            metadata = {
                "model": name,
                "sample_rate": out_rate,
                "seconds": round(len(samples) / out_rate, 3),
                "format": audio_format,
            }
            emit({"final": audio_output(data, mime, metadata)})

        async with self.resource_manager.acquire_gpu_resource(f"compose on {self.binding_instance_name}"):
            async with self._loaded.lock(name):
                async with contextlib.aclosing(stream_from_thread(work)) as items:
                    async for item in items:
                        if "final" in item:
                            yield {"type": "final", "content": [item["final"]], "metadata": {"model": name}}
                        else:
                            metadata = {"step": item["step"], "total_steps": item["total"]}
                            yield {
                                "type": "info",
                                "content": f"step {item['step']} of {item['total']}",
                                "metadata": metadata,
                            }
