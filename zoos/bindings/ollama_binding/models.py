"""Ollama's model list (/api/tags) and model details (/api/show) in our ModelInfo shape."""

from __future__ import annotations

from typing import Any

# Families of vision projectors, for Ollama servers older than 0.6.4 whose /api/show has no capabilities.
_VISION_FAMILIES = {"clip", "mllama"}


def canonical_name(name: str) -> str:
    """The name Ollama lists for ``name``: a name without a tag means ':latest'."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def context_length(show: Any) -> int | None:
    """Training context of a model: '<architecture>.context_length' in show's model_info."""
    info = dict(show.modelinfo or {})
    architecture = info.get("general.architecture")
    value = info.get(f"{architecture}.context_length")
    if value is None:  # some models name their keys after a family other than general.architecture
        value = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return int(value) if isinstance(value, int | float) else None


def capabilities(show: Any) -> list[str]:
    if show.capabilities is not None:
        return list(show.capabilities)
    families = set(show.details.families or []) if show.details else set()
    return ["completion", "vision"] if families & _VISION_FAMILIES else ["completion"]


def supports_vision(show: Any) -> bool:
    return "vision" in capabilities(show)


def describe(listed: Any, show: Any | None) -> dict[str, Any]:
    """A ModelInfo entry of /api/tags' ``listed``, completed by its /api/show answer when known."""
    details = listed.details
    return {
        "name": listed.model,
        "size": int(listed.size) if listed.size is not None else None,
        "modified_at": listed.modified_at.isoformat() if listed.modified_at else None,
        "format": details.format if details else None,
        "family": details.family if details else None,
        "families": list(details.families) if details and details.families else None,
        "parameter_size": details.parameter_size if details else None,
        "quantization_level": details.quantization_level if details else None,
        "context_size": context_length(show) if show else None,
        "license": _first_line(show.license) if show else None,
        "supports_vision": supports_vision(show) if show else False,
        "supports_audio": False,
        "details": {"digest": listed.digest, "capabilities": capabilities(show) if show else None},
    }


def model_info(name: str, show: Any, num_ctx: int | None) -> dict[str, Any]:
    """get_model_info's answer for a model's /api/show answer."""
    details = show.details
    training = context_length(show)
    return {
        "model_name": name,
        "model_type": "ttt",
        "context_size": num_ctx or training,
        "max_output_tokens": None,
        "supports_vision": supports_vision(show),
        "supports_audio": False,
        "supports_streaming": True,
        "details": {
            "format": details.format if details else None,
            "family": details.family if details else None,
            "families": list(details.families) if details and details.families else None,
            "parameter_size": details.parameter_size if details else None,
            "quantization_level": details.quantization_level if details else None,
            "capabilities": capabilities(show),
            "training_context_size": training,
            "configured_context_size": num_ctx,
            "license": _first_line(show.license),
        },
    }


def _first_line(text: str | None) -> str | None:
    # Ollama returns whole license texts; a listing only needs their title.
    return text.strip().splitlines()[0][:200] if text and text.strip() else None
