"""The parameters of text-to-video (``ttv``): size, frames, frame rate, denoising, and the container. Anything
else is refused (400 naming it); bindings add their own caps."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lollms_server.core.image_parameters import ImageParameters
from lollms_server.core.parameters import checked_model

VIDEO_FORMATS = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}


class VideoParameters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(default=None, ge=64, le=4096, multiple_of=8)
    height: int | None = Field(default=None, ge=64, le=4096, multiple_of=8)
    image_size: str | None = Field(default=None, max_length=20, description='"WIDTHxHEIGHT"')
    num_frames: int | None = Field(default=None, ge=1, le=1024)
    fps: int | None = Field(default=None, ge=1, le=60)
    num_inference_steps: int | None = Field(default=None, ge=1, le=500)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=50.0)
    negative_prompt: str | None = Field(default=None, max_length=4000)
    seed: int | None = Field(default=None, ge=-1, le=2**63 - 1)
    video_format: Literal["mp4", "webm", "gif"] | None = Field(default=None, description="mp4 (H.264) by default.")


def video_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    checked = checked_model(VideoParameters, parameters, "video parameters")
    values = checked.model_dump(exclude_none=True)
    if checked.image_size is not None:  # the same "WxH" rules as images
        size = ImageParameters.checked({"image_size": checked.image_size})
        values.pop("image_size")
        values.update(width=size.width, height=size.height)
    return values
