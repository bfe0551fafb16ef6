"""Image output: which models give it, the image parameters they honour, and their image parts as our outputs."""

from __future__ import annotations

import base64
from math import gcd
from typing import Any

from google.genai import types

from lollms_server.core.errors import BadRequestError

# Image parameters of the core (core/image_parameters.py) that only image requests carry.
# What Gemini's generateContent cannot honour for an image model (no negative prompt, sampler or denoising knobs).
REFUSED = ("negative_prompt", "num_inference_steps", "guidance_scale", "strength", "scheduler")
IMAGE_ONLY = ("width", "height", "n", *REFUSED)
# The ratios of ImageConfig.aspect_ratio; the resolution itself is the model's own.
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXAMPLE_MODEL = "gemini-2.5-flash-image"


def outputs_images(name: str) -> bool:
    """Gemini models answering with image parts go by name: gemini-*-image* (gemini-2.5-flash-image...)."""
    return name.startswith("gemini") and "image" in name


def is_imagen(name: str) -> bool:
    return name.startswith("imagen")


def imagen_refusal(binding: str, name: str) -> BadRequestError:
    # google-genai 3.x sends generate_images (Imagen's :predict) only to Vertex AI: in Gemini API mode it raises.
    return BadRequestError(
        f"binding '{binding}': model '{name}' is an Imagen model, which google-genai serves only through Vertex AI, "
        f"not the Gemini API; use a Gemini image model such as {EXAMPLE_MODEL}"
    )


def aspect_ratio(width: int, height: int) -> str:
    """``width``x``height`` as one of ASPECT_RATIOS; BadRequestError when it is none of them."""
    divisor = gcd(width, height)
    ratio = f"{width // divisor}:{height // divisor}"
    if ratio not in ASPECT_RATIOS:
        raise BadRequestError(
            f"gemini_binding: size {width}x{height} has aspect ratio {ratio}; Gemini image models make "
            f"{', '.join(ASPECT_RATIOS)} (the resolution is the model's own)"
        )
    return ratio


def image_config(binding: str, model: str, params: dict[str, Any]) -> types.ImageConfig | None:
    """The ImageConfig of a request to ``model``; BadRequestError naming the parameters it cannot honour."""
    given = [key for key in IMAGE_ONLY if params.get(key) is not None]
    if not outputs_images(model):
        if given:
            raise BadRequestError(
                f"binding '{binding}': model '{model}' does not generate images (parameters {', '.join(given)}); "
                f"use a Gemini image model such as {EXAMPLE_MODEL}"
            )
        return None
    refused = [key for key in REFUSED if key in given]
    if params.get("n") not in (None, 1):
        refused.append("n")  # one answer per call: the model decides how many image parts it holds
    if refused:
        raise BadRequestError(
            f"binding '{binding}': Gemini image models cannot honour {', '.join(refused)} "
            "(they take a prompt, an aspect ratio through width/height or image_size, and seed)"
        )
    width, height = params.get("width"), params.get("height")
    return types.ImageConfig(aspect_ratio=aspect_ratio(width, height) if width and height else None)


def image_outputs(parts: list[types.Part], model: str) -> list[dict[str, Any]]:
    """The inline image parts of an answer as our image outputs (base64, the part's mime type)."""
    outputs = []
    for part in parts:
        blob = part.inline_data
        if part.thought or blob is None or not blob.data or not (blob.mime_type or "").startswith("image/"):
            continue
        outputs.append(
            {
                "type": "image",
                "data": base64.b64encode(blob.data).decode("ascii"),
                "mime_type": blob.mime_type,
                "metadata": {"model": model, "index": len(outputs)},
            }
        )
    return outputs


def answer_parts(response: types.GenerateContentResponse) -> list[types.Part]:
    """The parts of the first candidate of a response or stream chunk."""
    candidate = response.candidates[0] if response.candidates else None
    return list(candidate.content.parts or []) if candidate and candidate.content else []
