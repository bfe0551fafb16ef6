"""The image parameters of a request: the core's model (``lollms_server.core.image_parameters``), checked
against the instance's caps, with this binding's defaults and scheduler names."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, get_args

from lollms_server.core.errors import BadRequestError
from lollms_server.core.image_parameters import ImageCaps, ImageParameters

logger = logging.getLogger(__name__)

SchedulerName = Literal["default", "ddim", "euler", "euler_ancestral", "dpm++", "pndm", "lms", "unipc"]
# Parameters a scripted workflow may pass along from a text request: not ours, ignored.
TEXT_PARAMETERS = frozenset(
    {"max_tokens", "temperature", "top_k", "top_p", "repeat_penalty", "repeat_last_n", "stop", "response_format"}
)
Caps = ImageCaps


@dataclass(frozen=True)
class ImageRequest:
    """The parameters a generation runs with (the request's, else these defaults)."""

    width: int | None = None
    height: int | None = None
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    seed: int | None = None
    n: int = 1
    strength: float = 0.8
    scheduler: SchedulerName = "default"


def parse_parameters(params: dict[str, Any], caps: ImageCaps) -> ImageRequest:
    """The request's image parameters within this instance's caps; BadRequestError naming the first wrong one."""
    ignored = sorted(key for key in params if key in TEXT_PARAMETERS)
    if ignored:
        logger.info("diffusers_binding ignored text parameters: %s", ", ".join(ignored))
    checked = ImageParameters.checked({key: value for key, value in params.items() if key not in TEXT_PARAMETERS})
    caps.check(checked)
    if checked.scheduler is not None and checked.scheduler not in get_args(SchedulerName):
        known = ", ".join(get_args(SchedulerName))
        raise BadRequestError(f"invalid image parameters: scheduler '{checked.scheduler}' is not one of {known}")
    given = checked.model_dump(exclude_none=True, exclude={"image_size"})
    return ImageRequest(**given)


def check_pixels(what: str, width: int, height: int, caps: ImageCaps) -> None:
    caps.check_pixels(what, width, height)
