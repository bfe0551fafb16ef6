"""Input images from requests (base64, checked before decoding) and PNG outputs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

from lollms_server.core.errors import BadRequestError
from lollms_server.core.media_inputs import open_image

from .parameters import Caps, check_pixels

INPUT_ROLES = ("input_image", "mask_image")


@dataclass
class ImageInputs:
    image: Any = None  # PIL.Image in RGB
    mask: Any = None  # PIL.Image in L

    @property
    def task(self) -> str:
        if self.image is None:
            return "text_to_image"
        return "inpainting" if self.mask is not None else "image_to_image"


def _open(item: Any, where: str, caps: Caps) -> Any:
    from PIL import Image

    if item.mime_type and not item.mime_type.startswith("image/"):
        raise BadRequestError(f"{where} has mime_type '{item.mime_type}'; an image is needed")
    # The header gives the size: a decompression bomb is refused before its pixels are decoded.
    image = open_image(item.binary(), where, lambda width, height: check_pixels(where, width, height, caps))
    declared = (item.mime_type or "").lower()
    actual = Image.MIME.get(image.format or "", "")
    if declared and actual and declared != actual and {declared, actual} != {"image/jpeg", "image/jpg"}:
        raise BadRequestError(f"{where} is declared as {declared} but holds {actual} data")
    try:
        image.load()
    except (OSError, ValueError, Image.DecompressionBombError):
        raise BadRequestError(f"{where} is a damaged or unreadable image") from None
    return image


def read_inputs(items: list[Any] | None, caps: Caps, size: tuple[int, int] | None) -> ImageInputs:
    """The input and mask images of a request, resized to ``size`` (or to multiples of 8), checked together."""
    inputs = ImageInputs()
    for index, item in enumerate(items or []):
        where = f"{item.role} (multimodal item {index})"
        if item.type != "image" or item.role not in INPUT_ROLES:
            raise BadRequestError(
                f"diffusers_binding takes images with role input_image or mask_image; got {item.type}/{item.role}"
            )
        attribute = "image" if item.role == "input_image" else "mask"
        if getattr(inputs, attribute) is not None:
            raise BadRequestError(f"send at most one {item.role}")
        image = _open(item, where, caps)
        setattr(inputs, attribute, image.convert("RGB" if attribute == "image" else "L"))
    if inputs.mask is not None:
        if inputs.image is None:
            raise BadRequestError("a mask_image needs an input_image to inpaint")
        if inputs.mask.size != inputs.image.size:
            raise BadRequestError(
                f"mask_image is {inputs.mask.width}x{inputs.mask.height} but input_image is "
                f"{inputs.image.width}x{inputs.image.height}; they must be the same size"
            )
    if inputs.image is not None:
        target = size or (max(inputs.image.width // 8 * 8, 8), max(inputs.image.height // 8 * 8, 8))
        if inputs.image.size != target:
            inputs.image = inputs.image.resize(target)
            if inputs.mask is not None:
                inputs.mask = inputs.mask.resize(target)
    return inputs


def png_output(image: Any, metadata: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {
        "type": "image",
        "data": base64.b64encode(buffer.getvalue()).decode("ascii"),
        "mime_type": "image/png",
        "metadata": metadata,
    }
