"""The backend's models: naming, what each can do, a one-minute cache, and our description of them."""

from __future__ import annotations

import math
import re
import time
from typing import Any

CACHE_SECONDS = 60.0
NOT_MULTIMODAL = ("embedding", "tts")
_GEMINI_VERSION = re.compile(r"^gemini-(\d+(?:\.\d+)?)")


def bare_name(name: str) -> str:
    """``models/gemini-2.5-flash`` -> ``gemini-2.5-flash``."""
    return name.strip().removeprefix("models/")


# The Gemini API does not list input modalities, so images go by name: gemini-* models take them (every Gemini
# generation model is multimodal) except embedding and text-to-speech variants; other families (gemma,
# learnlm...) are treated as text-only.
def is_tts(name: str) -> bool:
    """Gemini's speech models go by name: gemini-*-tts (gemini-2.5-flash-preview-tts...)."""
    return "tts" in name


def accepts_images(name: str) -> bool:
    return name.startswith("gemini") and not any(word in name for word in NOT_MULTIMODAL)


# A model thinks when its metadata says so; without metadata (listing failed), by name: "thinking" in it, or
# Gemini 2.5 and later. Only thinking models get a thinking_config, which others may refuse.
def thinks(name: str, model: Any | None) -> bool:
    if model is not None and model.thinking is not None:
        return bool(model.thinking)
    version = _GEMINI_VERSION.match(name)
    return "thinking" in name or (version is not None and float(version.group(1)) >= 2.5)


EXAMPLE_MODEL = "gemini-2.5-flash-image"  # named in errors about image output


def outputs_images(name: str) -> bool:
    """Gemini models answering with image parts go by name: gemini-*-image* (gemini-2.5-flash-image...)."""
    return name.startswith("gemini") and "image" in name


def is_imagen(name: str) -> bool:
    return name.startswith("imagen")


def generates_content(model: Any) -> bool:
    """Whether a listed model generates: generateContent, or Imagen's predict (the list also holds embedding and
    other models)."""
    actions = model.supported_actions
    return actions is None or "generateContent" in actions or "predict" in actions


def describe(model: Any) -> dict[str, Any]:
    """A ModelInfo-shaped dict of an SDK ``Model``."""
    name = bare_name(model.name or "")
    return {
        "name": name,
        "family": "gemini" if name.startswith("gemini") else name.split("-")[0],
        "context_size": model.input_token_limit,
        "max_output_tokens": model.output_token_limit,
        "model_type": "tti" if is_imagen(name) else "ttt",
        "supports_vision": accepts_images(name),
        "supports_audio": False,
        "details": {
            "display_name": model.display_name,
            "description": model.description,
            "version": model.version,
            "supported_generation_methods": list(model.supported_actions or []),
            "thinking": model.thinking,
            "default_temperature": model.temperature,
            "max_temperature": model.max_temperature,
            "default_top_p": model.top_p,
            "default_top_k": model.top_k,
        },
    }


class ModelCatalog:
    """The generating models of the backend by bare name, fresh for CACHE_SECONDS."""

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self._stored_at = -math.inf

    def fresh(self) -> bool:
        return time.monotonic() - self._stored_at < CACHE_SECONDS

    def store(self, models: list[Any]) -> None:
        self.models = {bare_name(model.name or ""): model for model in models if generates_content(model)}
        self._stored_at = time.monotonic()

    def get(self, name: str | None) -> Any | None:
        return self.models.get(name) if name else None
