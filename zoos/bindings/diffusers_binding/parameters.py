"""The image parameters of a request, validated against the instance's caps."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lollms_server.core.errors import BadRequestError

logger = logging.getLogger(__name__)

SchedulerName = Literal["default", "ddim", "euler", "euler_ancestral", "dpm++", "pndm", "lms", "unipc"]
# Parameters every request carries (the pipeline adds max_tokens) or that text personalities set: not ours.
TEXT_PARAMETERS = frozenset(
    {"max_tokens", "temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n", "stop", "response_format"}
)
SIZE = re.compile(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*")


class ImageParameters(BaseModel):
    """What a text-to-image, image-to-image or inpainting request may set."""

    model_config = ConfigDict(extra="allow")

    width: int | None = Field(default=None, ge=64, le=8192, multiple_of=8, description="Output width in pixels.")
    height: int | None = Field(default=None, ge=64, le=8192, multiple_of=8, description="Output height in pixels.")
    image_size: str | None = Field(default=None, max_length=20, description='"WIDTHxHEIGHT", e.g. "512x512".')
    num_inference_steps: int = Field(default=30, ge=1, description="Denoising steps.")
    guidance_scale: float = Field(default=7.5, ge=0.0, le=50.0, description="Classifier-free guidance scale.")
    negative_prompt: str | None = Field(default=None, max_length=4000, description="What to steer away from.")
    seed: int | None = Field(default=None, ge=-1, le=2**63 - 1, description="Seed; -1 or none picks one.")
    n: int = Field(default=1, ge=1, description="Number of images.")
    strength: float = Field(default=0.8, gt=0.0, le=1.0, description="How much an input image is changed.")
    scheduler: SchedulerName = Field(default="default", description="Sampler; default keeps the model's own.")

    @model_validator(mode="after")
    def _size(self) -> ImageParameters:
        if self.image_size is None:
            return self
        match = SIZE.fullmatch(self.image_size)
        if match is None:
            raise ValueError(f"image_size must look like '512x512', not {self.image_size!r}")
        width, height = int(match[1]), int(match[2])
        if (self.width, self.height) not in ((None, None), (width, height)):
            raise ValueError("image_size disagrees with width/height; send one or the other")
        for name, value in (("width", width), ("height", height)):
            if not 64 <= value <= 8192 or value % 8:
                raise ValueError(f"image_size {name} must be a multiple of 8 between 64 and 8192")
        self.width, self.height = width, height
        return self


@dataclass(frozen=True)
class Caps:
    max_image_pixels: int
    max_inference_steps: int
    max_images_per_request: int


def parse_parameters(params: dict[str, Any], caps: Caps) -> ImageParameters:
    """The request's image parameters; BadRequestError naming the first wrong one."""
    try:
        parsed = ImageParameters.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'parameters'}: {error['msg']}" for error in exc.errors()
        )
        raise BadRequestError(f"invalid image parameters: {problems}") from None
    if parsed.num_inference_steps > caps.max_inference_steps:
        raise BadRequestError(
            f"num_inference_steps is {parsed.num_inference_steps}; this instance allows at most "
            f"{caps.max_inference_steps} (max_inference_steps)"
        )
    if parsed.n > caps.max_images_per_request:
        raise BadRequestError(
            f"n is {parsed.n}; this instance makes at most {caps.max_images_per_request} images per request "
            "(max_images_per_request)"
        )
    if parsed.width and parsed.height:
        check_pixels("the requested size", parsed.width, parsed.height, caps)
    ignored = sorted(set(parsed.model_extra or {}) - TEXT_PARAMETERS)
    if ignored:
        logger.info("diffusers_binding ignored parameters it does not know: %s", ", ".join(ignored))
    return parsed


def check_pixels(what: str, width: int, height: int, caps: Caps) -> None:
    if width * height > caps.max_image_pixels:
        raise BadRequestError(
            f"{what} is {width}x{height} = {width * height:,} pixels; this instance allows at most "
            f"{caps.max_image_pixels:,} (max_image_pixels)"
        )
