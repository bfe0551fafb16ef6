"""The parameters of image tasks (text-to-image, image-to-image, inpainting) and their caps, in one place:
the pipeline checks them against the server's ``limits`` section, an image binding against its instance's own
(stricter) caps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lollms_server.core.errors import BadRequestError
from lollms_server.core.parameters import checked_model

_SIZE = re.compile(r"\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*")


class ImageParameters(BaseModel):
    """What an image request may set; anything else is refused (400 naming it). Defaults are the binding's."""

    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(default=None, ge=64, le=8192, multiple_of=8, description="Output width (pixels).")
    height: int | None = Field(default=None, ge=64, le=8192, multiple_of=8, description="Output height (pixels).")
    image_size: str | None = Field(default=None, max_length=20, description='"WIDTHxHEIGHT", e.g. "512x512".')
    num_inference_steps: int | None = Field(default=None, ge=1, description="Denoising steps.")
    guidance_scale: float | None = Field(default=None, ge=0.0, le=50.0, description="Classifier-free guidance.")
    negative_prompt: str | None = Field(default=None, max_length=4000, description="What to steer away from.")
    seed: int | None = Field(default=None, ge=-1, le=2**63 - 1, description="Seed; -1 or none picks one.")
    n: int | None = Field(default=None, ge=1, description="Number of images.")
    strength: float | None = Field(default=None, gt=0.0, le=1.0, description="How much an input image changes.")
    scheduler: str | None = Field(default=None, max_length=40, description="Sampler name; the binding lists its own.")

    @model_validator(mode="after")
    def _size(self) -> ImageParameters:
        if self.image_size is None:
            return self
        match = _SIZE.fullmatch(self.image_size)
        if match is None:
            raise ValueError(f"image_size must look like '512x512', not {self.image_size!r}")
        width, height = int(match[1]), int(match[2])
        if (self.width, self.height) not in ((None, None), (width, height)):
            raise ValueError("image_size disagrees with width/height; send one or the other")
        for name, value in (("width", width), ("height", height)):
            if not 64 <= value <= 8192 or value % 8:
                raise ValueError(f"image_size {name} must be a multiple of 8 between 64 and 8192")
        self.width, self.height, self.image_size = width, height, None
        return self

    @classmethod
    def checked(cls, parameters: Mapping[str, Any] | None) -> ImageParameters:
        """The parameters, or BadRequestError naming what is wrong."""
        return checked_model(cls, parameters, "image parameters")


@dataclass(frozen=True)
class ImageCaps:
    """Upper bounds of image requests; ``setting`` names where they are configured (for the messages)."""

    max_image_pixels: int
    max_inference_steps: int
    max_images_per_request: int
    setting: str = ""

    def check_pixels(self, what: str, width: int, height: int) -> None:
        if width * height > self.max_image_pixels:
            raise BadRequestError(
                f"{what} is {width}x{height} = {width * height:,} pixels; the limit is {self.max_image_pixels:,} "
                f"({self.setting}max_image_pixels)"
            )

    def check(self, parameters: ImageParameters) -> None:
        steps, count = parameters.num_inference_steps, parameters.n
        if steps is not None and steps > self.max_inference_steps:
            raise BadRequestError(
                f"num_inference_steps is {steps}; the limit is {self.max_inference_steps} "
                f"({self.setting}max_inference_steps)"
            )
        if count is not None and count > self.max_images_per_request:
            raise BadRequestError(
                f"n is {count} images; the limit is {self.max_images_per_request} per request "
                f"({self.setting}max_images_per_request)"
            )
        if parameters.width and parameters.height:
            self.check_pixels("the requested size", parameters.width, parameters.height)
