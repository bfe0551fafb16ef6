"""Our image requests in OpenAI's images API (generations and edits), and its answers as image outputs."""

from __future__ import annotations

import io
from typing import Any

from lollms_server.core.errors import BadRequestError, CapabilityError
from lollms_server.core.limits import InputLimits
from lollms_server.core.media_inputs import open_image

DEFAULT_IMAGE_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1")
# Image parameters the images API has no field for: refused rather than silently dropped.
UNSUPPORTED = ("num_inference_steps", "guidance_scale", "scheduler", "strength", "seed", "negative_prompt")
INPUT_ROLES = ("input_image", "mask_image")
IMAGE_TASKS = ("tti", "i2i")  # generation types the images API serves
# Instance settings passed on as the images API field of the same name when set.
SETTING_FIELDS = {"image_quality": "quality", "image_style": "style", "image_background": "background"}


def image_arguments(
    model: str, prompt: str, params: dict[str, Any], config: dict[str, Any], binding: str, edit: bool
) -> dict[str, Any]:
    """images.generate / images.edit arguments for our checked image parameters and the instance's settings."""
    refused = [name for name in UNSUPPORTED if params.get(name) is not None]
    if refused:
        raise BadRequestError(
            f"binding '{binding}' (OpenAI images API, model '{model}') cannot honour {', '.join(refused)}; "
            "leave them out"
        )
    if not prompt:
        raise BadRequestError("the OpenAI images API needs a prompt: send a text item with role 'user_prompt'")
    arguments: dict[str, Any] = {"model": model, "prompt": prompt}
    if params.get("width") and params.get("height"):
        arguments["size"] = f"{params['width']}x{params['height']}"
    if params.get("n") is not None:
        arguments["n"] = params["n"]
    if not model.startswith("gpt-image"):  # gpt-image models always answer b64 and refuse the field
        arguments["response_format"] = "b64_json"
    for setting, name in SETTING_FIELDS.items():
        if config.get(setting) and not (edit and name == "style"):  # edits have no style
            arguments[name] = config[setting]
    return arguments


def openai_mask(raw: bytes, limits: InputLimits) -> bytes:
    """Our mask (white = repaint) as OpenAI's: a PNG whose transparent pixels mark the area to edit (blocking)."""
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise CapabilityError("edits with a mask_image need Pillow on the server (pip install pillow)") from None
    where = "mask_image"
    with open_image(raw, where, lambda width, height: limits.check_input_pixels(where, width, height)) as image:
        try:
            gray = image.convert("L")
        except (OSError, ValueError, Image.DecompressionBombError):
            raise BadRequestError("mask_image is a damaged or unreadable image") from None
    mask = Image.new("RGBA", gray.size, (0, 0, 0, 255))
    mask.putalpha(ImageOps.invert(gray))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


def edit_files(items: list[Any], limits: InputLimits) -> dict[str, Any]:
    """The ``image`` (and ``mask``) upload of an edit, as (file name, bytes, mime type) (blocking: decodes the mask)."""
    found: dict[str, Any] = {}
    for item in items:
        if item.type != "image" or item.role not in INPUT_ROLES:
            raise BadRequestError(
                f"OpenAI image models take images with role input_image or mask_image; got {item.type}/{item.role}"
            )
        if item.role in found:
            raise BadRequestError(f"send at most one {item.role}")
        found[item.role] = item
    if "input_image" not in found:
        raise BadRequestError("a mask_image needs an input_image to edit")
    image = found["input_image"]
    mime = image.mime_type or "image/png"
    files: dict[str, Any] = {"image": (f"image.{mime.split('/')[-1]}", image.binary(), mime)}
    if "mask_image" in found:
        files["mask"] = ("mask.png", openai_mask(found["mask_image"].binary(), limits), "image/png")
    return files


def image_outputs(response: Any, model: str) -> list[dict[str, Any]] | None:
    """Our image outputs for an ImagesResponse; None when it holds no base64 image (a URL, nothing)."""
    outputs = []
    for index, image in enumerate(response.data or []):
        if not image.b64_json:
            return None
        metadata: dict[str, Any] = {"model": model, "index": index}
        if image.revised_prompt:
            metadata["revised_prompt"] = image.revised_prompt
        for key in ("size", "quality", "background"):
            if getattr(response, key, None):
                metadata[key] = getattr(response, key)
        outputs.append({"type": "image", "data": image.b64_json, "mime_type": "image/png", "metadata": metadata})
    return outputs or None
