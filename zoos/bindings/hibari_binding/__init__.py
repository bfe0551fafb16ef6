"""hibari_binding: English text-to-speech in process with hibari-tts (onnxruntime), offline.

Synthesis runs sentence by sentence in a worker thread inside a compute slot; with ``stream: true`` each sentence
arrives as an audio chunk of its own (a complete file in the requested format, playable alone) before the final
event holds the whole audio. OpenAI's voice names map to the closest installed voice, so clients that always
send one work; a voice that is not installed is never downloaded."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator
from typing import Any

import anyio

from lollms_server.core.audio_files import audio_output, encode, resample
from lollms_server.core.bindings import Binding, final_outputs
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.local_models import LoadedModels
from lollms_server.core.thread_stream import Emit, stream_from_thread

MODEL = "hibari"
# OpenAI's voices -> hibari's (by gender and accent); a voice not installed falls back to the default voice.
OPENAI_VOICES = {
    "alloy": "heart",
    "ash": "fenrir",
    "ballad": "fable",
    "coral": "kore",
    "echo": "fenrir",
    "fable": "fable",
    "nova": "heart",
    "onyx": "fenrir",
    "sage": "kore",
    "shimmer": "emma",
    "verse": "fable",
}


def installed_voices() -> list[str]:
    from hibari.voices import VOICES, voice_path

    found = []
    for name in VOICES:
        try:
            voice_path(name, download_missing=False)
        except (FileNotFoundError, ValueError):
            continue
        found.append(name)
    return found


class HibariBinding(Binding):
    binding_type_name = "hibari_binding"
    input_modalities = ("text",)
    output_modalities = ("audio",)
    tasks = ("tts",)
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.default_voice = str(config.get("default_voice") or "heart")
        self.default_format = str(config.get("default_format") or "wav")
        self.threads = int(config.get("threads") or 1)
        self.max_chars = int(config.get("max_chars") or 20000)
        self._voices: LoadedModels[Any] = LoadedModels()  # Hibari instances by voice

    # --- models and voices -------------------------------------------------------------------------
    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}  # CPU-heavy: synthesis takes a compute slot like any local model

    async def resolve_model(self, model_name: str | None) -> str | None:
        if model_name not in (None, "", MODEL):
            raise NotFoundError(
                f"model '{model_name}' not found on binding '{self.binding_instance_name}' (available: {MODEL})"
            )
        return MODEL

    async def list_available_models(self) -> list[dict[str, Any]]:
        voices = await anyio.to_thread.run_sync(installed_voices)
        return [{"name": MODEL, "format": "onnx", "details": {"voices": voices, "sample_rate": 24000}}]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        voices = await anyio.to_thread.run_sync(installed_voices)
        return {
            "model_name": MODEL,
            "model_type": "tts",
            "supports_streaming": True,
            "details": {"voices": voices, "default_voice": self.default_voice, "sample_rate": 24000},
        }

    async def load_model(self, model_name: str) -> bool:
        await self._voice(self.default_voice)
        return True

    async def unload_model(self) -> bool:
        self._voices.clear()
        return True

    def _voice_name(self, requested: str | None, installed: list[str]) -> str:
        name = (requested or self.default_voice).lower()
        if name in OPENAI_VOICES:
            mapped = OPENAI_VOICES[name]
            return mapped if mapped in installed else self.default_voice
        if name not in installed:
            raise BadRequestError(
                f"voice '{requested}' is not installed on binding '{self.binding_instance_name}' "
                f"(installed: {', '.join(installed)}; OpenAI's voice names are accepted too)"
            )
        return name

    async def _voice(self, name: str) -> Any:
        async def load() -> Any:
            from hibari import Hibari

            return await run_compute(lambda: Hibari(voice=name, threads=self.threads))

        return await self._voices.get(name, load)

    # --- generation --------------------------------------------------------------------------------
    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await final_outputs(self._speak(prompt, params, pieces=False))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        async with contextlib.aclosing(self._speak(prompt, params, pieces=True)) as chunks:
            async for chunk in chunks:
                yield chunk

    async def _speak(self, text: str, params: dict[str, Any], pieces: bool) -> AsyncGenerator[dict[str, Any], None]:
        if not text.strip():
            raise BadRequestError("nothing to say: the user_prompt is empty")
        if len(text) > self.max_chars:
            raise BadRequestError(
                f"the text has {len(text):,} characters; binding '{self.binding_instance_name}' speaks at most "
                f"{self.max_chars:,} per request (max_chars)"
            )
        voice_name = self._voice_name(params.get("voice"), await anyio.to_thread.run_sync(installed_voices))
        audio_format = str(params.get("audio_format") or self.default_format)
        speed = float(params.get("speed") or 1.0)
        seed = params.get("seed")
        seed = None if seed is None or seed < 0 else int(seed)
        tts = await self._voice(voice_name)
        rate = int(params.get("sample_rate") or tts.sample_rate)

        def work(emit: Emit, stop: threading.Event) -> None:
            import numpy as np

            parts = []
            for index, samples in enumerate(tts.stream(text, speed=speed, seed=seed)):
                if stop.is_set():
                    return
                samples = resample(samples, tts.sample_rate, rate)
                parts.append(samples)
                if pieces:
                    data, mime = encode(samples, rate, audio_format)
                    emit(audio_output(data, mime, {"index": index, "seconds": round(len(samples) / rate, 3)}))
            whole = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            data, mime = encode(whole, rate, audio_format)
            metadata = {
                "voice": voice_name,
                "sample_rate": rate,
                "seconds": round(len(whole) / rate, 3),
                "format": audio_format,
            }
            emit({"final": audio_output(data, mime, {"model": MODEL, **metadata})})

        async with self.resource_manager.acquire_gpu_resource(f"speak on {self.binding_instance_name}"):
            async with self._voices.lock(voice_name):  # one synthesis per loaded voice at a time
                async with contextlib.aclosing(stream_from_thread(work)) as items:
                    async for item in items:
                        if "final" in item:
                            yield {"type": "final", "content": [item["final"]], "metadata": {"model": MODEL}}
                        else:
                            yield {"type": "chunk", "content": item}
