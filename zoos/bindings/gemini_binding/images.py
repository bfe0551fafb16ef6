"""Image output: which models give it, the image parameters they honour, and their image parts as our outputs."""

from __future__ import annotations

import logging
from math import gcd
from typing import Any

from lollms_server.core.errors import BackendFailedError, BadRequestError

from .catalog import EXAMPLE_MODEL, outputs_images

logger = logging.getLogger(__name__)

# Image parameters of the core (core/image_parameters.py) that only image requests carry.
# What Gemini's generateContent cannot honour for an image model (no negative prompt, sampler or denoising knobs).
REFUSED = ("negative_prompt", "num_inference_steps", "guidance_scale", "strength", "scheduler")
IMAGE_ONLY = ("width", "height", "n", *REFUSED)
# The ratios of ImageConfig.aspect_ratio; the resolution itself is the model's own.
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")


# Imagen on the Gemini API (models/<imagen>:predict): a prompt, 1 to 4 images, five aspect ratios. No seed,
# negative prompt or editing there (those are Vertex AI's), so they are refused rather than dropped.
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
IMAGEN_REFUSED = (*REFUSED, "seed")
IMAGEN_MAX_IMAGES = 4


def imagen_body(binding: str, model: str, prompt: str, params: dict[str, Any], generation_type: str) -> dict[str, Any]:
    """The ``:predict`` body of an Imagen request; BadRequestError naming what Imagen cannot honour."""
    if generation_type != "tti":
        raise BadRequestError(
            f"binding '{binding}': model '{model}' is an Imagen model: it makes images from a prompt "
            f"(generation_type 'tti'), not '{generation_type}'"
        )
    refused = [key for key in IMAGEN_REFUSED if params.get(key) is not None]
    if refused:
        raise BadRequestError(
            f"binding '{binding}': Imagen on the Gemini API cannot honour {', '.join(refused)} "
            "(it takes a prompt, n up to 4, and an aspect ratio through width/height or image_size)"
        )
    count = int(params.get("n") or 1)
    if count > IMAGEN_MAX_IMAGES:
        raise BadRequestError(f"binding '{binding}': Imagen makes at most {IMAGEN_MAX_IMAGES} images per request")
    parameters: dict[str, Any] = {"sampleCount": count}
    width, height = params.get("width"), params.get("height")
    if width and height:
        parameters["aspectRatio"] = aspect_ratio(width, height, IMAGEN_RATIOS, "Imagen")
    return {"instances": [{"prompt": prompt}], "parameters": parameters}


def imagen_outputs(binding: str, answer: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The predictions of an Imagen answer as our image outputs; an error when none came back."""
    outputs: list[dict[str, Any]] = []
    filtered = []
    for prediction in answer.get("predictions") or []:
        data = prediction.get("bytesBase64Encoded") if isinstance(prediction, dict) else None
        if not data:
            if isinstance(prediction, dict) and prediction.get("raiFilteredReason"):
                filtered.append(str(prediction["raiFilteredReason"])[:300])
            continue
        outputs.append(
            {
                "type": "image",
                "data": data,
                "mime_type": prediction.get("mimeType") or "image/png",
                "metadata": {"model": model, "index": len(outputs)},
            }
        )
    if filtered and not outputs:  # Google's safety filter blocked the prompt: the client can change it
        logger.info("%s: Imagen filtered the prompt: %s", binding, filtered[0])  # backend text: to the log only
        raise BadRequestError(f"binding '{binding}': Imagen made no image: its safety filter blocked the prompt")
    if not outputs:
        raise BackendFailedError(f"binding '{binding}': Imagen answered without an image")
    return outputs


def aspect_ratio(
    width: int, height: int, ratios: tuple[str, ...] = ASPECT_RATIOS, models: str = "Gemini image models"
) -> str:
    """``width``x``height`` as one of ``ratios``; BadRequestError when it is none of them."""
    divisor = gcd(width, height)
    ratio = f"{width // divisor}:{height // divisor}"
    if ratio not in ratios:
        raise BadRequestError(
            f"gemini_binding: size {width}x{height} has aspect ratio {ratio}; {models} make "
            f"{', '.join(ratios)} (the resolution is the model's own)"
        )
    return ratio


def image_answer(binding: str, model: str, params: dict[str, Any]) -> tuple[bool, str | None]:
    """(whether ``model`` answers with images, the aspect ratio asked for); BadRequestError naming the parameters
    it cannot honour."""
    given = [key for key in IMAGE_ONLY if params.get(key) is not None]
    if not outputs_images(model):
        if given:
            raise BadRequestError(
                f"binding '{binding}': model '{model}' does not generate images (parameters {', '.join(given)}); "
                f"use a Gemini image model such as {EXAMPLE_MODEL}"
            )
        return False, None
    refused = [key for key in REFUSED if key in given]
    if params.get("n") not in (None, 1):
        refused.append("n")  # one answer per call: the model decides how many image parts it holds
    if refused:
        raise BadRequestError(
            f"binding '{binding}': Gemini image models cannot honour {', '.join(refused)} "
            "(they take a prompt, an aspect ratio through width/height or image_size, and seed)"
        )
    width, height = params.get("width"), params.get("height")
    return True, aspect_ratio(width, height) if width and height else None


def image_outputs(parts: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """The inline image parts of an answer as our image outputs (base64 as they came, the part's mime type)."""
    outputs: list[dict[str, Any]] = []
    for part in parts:
        blob = part.get("inlineData") or {}
        mime_type = str(blob.get("mimeType") or "")
        if part.get("thought") or not blob.get("data") or not mime_type.startswith("image/"):
            continue
        outputs.append(
            {
                "type": "image",
                "data": blob["data"],
                "mime_type": mime_type,
                "metadata": {"model": model, "index": len(outputs)},
            }
        )
    return outputs
