"""OpenAI image requests as our tti / i2i GenerationRequest, our image outputs as OpenAI's ImagesResponse.

OpenAI's edit mask is a PNG whose transparent pixels mark the area to edit; image bindings take a ``mask_image``
where white means repaint, so the mask's alpha channel is inverted into a white-on-black grayscale PNG.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

from lollms_server.api.models import InputData, OutputData
from lollms_server.api.openai_compat.protocol import ImageFields
from lollms_server.api.wire_fields import refuse
from lollms_server.core.artifacts import ARTIFACT_PATH_PREFIX
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.errors import BackendFailedError, BadRequestError, CapabilityError
from lollms_server.core.limits import InputLimits
from lollms_server.core.media_inputs import open_image
from lollms_server.core.model_ids import ModelChoice, ModelIds
from lollms_server.core.public_url import absolute_url

# Fields passed to the image task's parameters as they are (OpenAI's n, and our extensions).
_PASSED = ("n", "negative_prompt", "num_inference_steps", "guidance_scale", "seed", "scheduler", "strength")
RESPONSE_FORMATS = ("b64_json", "url")


def response_format_of(fields: ImageFields) -> str:
    """The answer's format: ``b64_json`` unless ``url`` is asked; anything else is a 400."""
    chosen = fields.response_format or "b64_json"
    if chosen not in RESPONSE_FORMATS:
        raise BadRequestError(f"response_format must be 'b64_json' or 'url', not {chosen!r}")
    return chosen


def image_parameters(fields: ImageFields) -> dict[str, Any]:
    parameters = {name: getattr(fields, name, None) for name in _PASSED}
    # url: the core stores the images and answers with their paths; b64_json: inline, whatever their size
    parameters["output_format"] = "url" if response_format_of(fields) == "url" else "base64"
    if fields.size and fields.size != "auto":
        parameters["image_size"] = fields.size
    return {name: value for name, value in parameters.items() if value is not None}


def image_request(
    fields: ImageFields, items: list[InputData], model_ids: ModelIds, generation_type: str
) -> GenerationRequest:
    """Our request for an OpenAI image one; refuses (400) the fields this server cannot honour."""
    refuse(fields, fields.REFUSED)
    choice = model_ids.parse(fields.model) if fields.model else ModelChoice(None, None)
    return GenerationRequest(
        input_data=items,
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        personality=choice.personality,
        generation_type=generation_type,
        parameters=image_parameters(fields),
    )


def images_response(outputs: list[OutputData], response_format: str, public_url: str | None) -> dict[str, Any]:
    """OpenAI's ImagesResponse for our outputs: stored ones as their URL under ``public_url`` (``server.public_url``,
    never the request's Host), or as their path without one; an image the binding gave as a URL as it is. A run
    without any image is a backend failure."""
    images = [output for output in outputs if output.type == "image"]
    if not images:
        errors = [str(output.data) for output in outputs if output.type == "error"]
        raise BackendFailedError("; ".join(errors) or "the binding answered without an image")
    if response_format == "url":
        data = [{"url": _url_of(str(image.data), public_url)} for image in images]
    else:
        data = [{"b64_json": str(image.data)} for image in images]
    return {"created": int(time.time()), "data": data}


def _url_of(data: str, public_url: str | None) -> str:
    return absolute_url(data, public_url) if data.startswith(ARTIFACT_PATH_PREFIX) else data


def upload_item(raw: bytes, content_type: str | None, role: str, limits: InputLimits) -> InputData:
    """An uploaded image as an input item; a declared type that is not an image is left to the binding's sniffing."""
    data = base64.b64encode(raw).decode("ascii")
    limits.check_binary(data, role)
    mime = content_type if content_type and content_type.startswith("image/") else None
    return InputData(type="image", role=role, data=data, mime_type=mime)


def repaint_mask(raw: bytes, limits: InputLimits) -> str:
    """OpenAI's mask (transparent = edit) as ours (white = repaint): a grayscale PNG, base64 (blocking)."""
    try:
        from PIL import ImageOps
    except ImportError:
        raise CapabilityError(
            "edits with a mask need Pillow on the server (pip install 'lollms-server[diffusers]')"
        ) from None
    with open_image(raw, "mask", lambda width, height: limits.check_input_pixels("mask", width, height)) as image:
        if "A" not in image.getbands() and "transparency" not in image.info:
            raise BadRequestError(
                "mask must be a PNG with an alpha channel: its transparent pixels mark the area to edit"
            )
        try:
            alpha = image.convert("RGBA").getchannel("A")
        except (OSError, ValueError):
            raise BadRequestError("mask is a damaged or unreadable image") from None
    buffer = io.BytesIO()
    ImageOps.invert(alpha).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
