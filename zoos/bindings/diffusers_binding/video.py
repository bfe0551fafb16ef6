"""Text-to-video: the video pipelines (TextToVideoSD, AnimateDiff...), one denoising call, and the frames
encoded as MP4 (H.264) or WebM (VP9) through the ffmpeg that imageio-ffmpeg ships in its wheel, or as a GIF.

Everything here blocks: the binding runs it in worker threads.
"""

from __future__ import annotations

import inspect
import io
import os
import tempfile
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from lollms_server.core.errors import BadRequestError
from lollms_server.core.video_parameters import VIDEO_FORMATS

VIDEO_TASK = "text_to_video"
# Pipeline classes (model_index.json's _class_name) that make videos from a prompt.
VIDEO_PIPELINES = frozenset({"TextToVideoSDPipeline", "AnimateDiffPipeline", "CogVideoXPipeline", "LTXPipeline"})
CODECS = {"mp4": ("libx264", "yuv420p", ["-movflags", "+faststart"]), "webm": ("libvpx-vp9", "yuv420p", [])}


@dataclass(frozen=True)
class VideoRequest:
    width: int | None = None
    height: int | None = None
    num_frames: int = 16
    fps: int = 8
    num_inference_steps: int = 25
    guidance_scale: float = 9.0
    negative_prompt: str | None = None
    seed: int | None = None
    video_format: str = "mp4"


def parse_video(params: dict[str, Any], max_frames: int) -> VideoRequest:
    known = VideoRequest.__dataclass_fields__
    request = VideoRequest(**{key: value for key, value in params.items() if key in known and value is not None})
    if request.num_frames > max_frames:
        raise BadRequestError(
            f"num_frames {request.num_frames} is over this instance's limit of {max_frames} (max_frames)"
        )
    return request


def make_video(
    pipeline: Any, prompt: str, request: VideoRequest, size: tuple[int, int], seed: int, on_step_end: Any
) -> Any:
    """The frames (numpy, frames x height x width x 3, floats in 0..1) of one video."""
    import torch

    arguments: dict[str, Any] = {
        "prompt": prompt,
        "negative_prompt": request.negative_prompt,
        "num_frames": request.num_frames,
        "width": size[0],
        "height": size[1],
        "num_inference_steps": request.num_inference_steps,
        "guidance_scale": request.guidance_scale,
        "generator": torch.Generator(device="cpu").manual_seed(seed),
        "output_type": "np",
    }
    if "callback_on_step_end" in inspect.signature(pipeline.__call__).parameters:
        arguments["callback_on_step_end"] = on_step_end
    else:  # older pipelines (TextToVideoSD) call back with (step, timestep, latents) every callback_steps
        progress = SimpleNamespace(num_timesteps=request.num_inference_steps)
        arguments["callback"] = lambda step, timestep, latents: on_step_end(progress, step, timestep, {})
        arguments["callback_steps"] = 1
    with torch.inference_mode():
        frames = pipeline(**arguments).frames
    return frames[0]


def encode_video(frames: Any, fps: int, video_format: str) -> tuple[bytes, str]:
    """(bytes, media type) of ``frames`` in ``video_format`` (mp4, webm or gif)."""
    import numpy as np

    pixels = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
    if video_format == "gif":
        from PIL import Image

        images = [Image.fromarray(frame) for frame in pixels]
        buffer = io.BytesIO()
        images[0].save(
            buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0
        )
        return buffer.getvalue(), VIDEO_FORMATS["gif"]
    import imageio_ffmpeg

    codec, pixel_format, extra = CODECS[video_format]
    height, width = pixels.shape[1:3]
    handle, path = tempfile.mkstemp(suffix=f".{video_format}")  # MP4's index is written at the end: a seekable file
    os.close(handle)
    try:
        writer = imageio_ffmpeg.write_frames(
            path,
            (width, height),
            fps=fps,
            codec=codec,
            pix_fmt_out=pixel_format,
            output_params=extra,
            macro_block_size=8,
        )
        writer.send(None)
        for frame in pixels:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
        with open(path, "rb") as file:
            return file.read(), VIDEO_FORMATS[video_format]
    finally:
        os.unlink(path)
