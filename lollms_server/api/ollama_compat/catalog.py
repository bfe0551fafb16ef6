"""Models as Ollama describes them: name resolution (':latest'), /api/tags entries and /api/show."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from lollms_server.api.ollama_compat.reply import timestamp
from lollms_server.api.ollama_compat.translate import ollama_parameters
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.bindings import Binding
from lollms_server.core.errors import BadRequestError, ForbiddenError, NotFoundError, UnavailableError
from lollms_server.core.generation import AppliedPersonality
from lollms_server.core.model_ids import alias_entries, list_model_ids, personality_model_ids
from lollms_server.core.personalities import PersonalityManager

LATEST = ":latest"
# Bindings do not date their models; clients only display this, so the server's start is honest enough.
_STARTED = timestamp(datetime.now(timezone.utc))


@dataclass(frozen=True)
class Models:
    """What model names resolve against."""

    bindings: BindingManager
    personalities: PersonalityManager | None
    default_text_binding: str | None


@dataclass(frozen=True)
class Target:
    """A model id resolved: the binding and model that serve it, and the personality if it names one."""

    binding_name: str
    binding: Binding
    model_name: str | None
    personality: AppliedPersonality | None = None


async def find_target(models: Models, model_id: str) -> Target:
    """The binding, model and personality of a model id; NotFoundError if any of them does not exist."""
    choice = models.bindings.model_ids.parse(model_id)
    personality = None
    binding_name = choice.binding_name
    if choice.personality is not None:
        if models.personalities is None:
            raise UnavailableError("the personality manager is not ready (the server is starting or stopping)")
        personality = await models.personalities.resolve(choice.personality)
        binding_name = models.default_text_binding
    if not binding_name:  # only a personality leaves it unset
        raise BadRequestError("personalities run on defaults.ttt_binding, which is not configured")
    binding, model = await models.bindings.use(binding_name, choice.model_name)
    return Target(binding_name, binding, model, personality)


async def canonical_name(models: Models, name: str) -> str:
    """``name``, or without the ':latest' Ollama clients append to untagged names when only that exists (or only
    that may be used: the key's lists are checked again on the name returned)."""
    if not name.endswith(LATEST):
        return name
    try:
        await find_target(models, name)
    except (NotFoundError, ForbiddenError):
        return name[: -len(LATEST)]
    return name


def tag_entry(name: str, size: int | None, details: dict[str, Any]) -> dict[str, Any]:
    """One /api/tags model; the digest is a stable hash of the name (there is no blob to hash)."""
    return {
        "name": name,
        "model": name,
        "modified_at": _STARTED,
        "size": size or 0,
        "digest": hashlib.sha256(name.encode("utf-8")).hexdigest(),
        "details": details,
    }


def ollama_details(described: dict[str, Any], fallback_family: str) -> dict[str, Any]:
    family = described.get("family") or fallback_family
    return {
        "parent_model": "",
        "format": described.get("format") or "",
        "family": family,
        "families": [family],
        "parameter_size": described.get("parameter_size") or "",
        "quantization_level": described.get("quantization_level") or "",
    }


async def list_tags(models: Models) -> list[dict[str, Any]]:
    """Binding models that generate text (ttt) or embeddings, then the available personalities."""
    tags = []
    entries = await list_model_ids(models.bindings)
    for entry in entries:
        if "ttt" in entry["tasks"] or "embedding" in entry["outputs"]:
            instance = models.bindings.instances[entry["binding"]]
            details = ollama_details(entry.get("details") or _default_details(entries, entry), instance.type_name)
            tags.append(tag_entry(entry["id"], entry.get("size"), details))
    if models.default_text_binding:  # personalities run on the default text binding
        persona = ollama_details({"format": "lollms", "family": "personality"}, "personality")
        tags += [tag_entry(model_id, 0, persona) for model_id in personality_model_ids(models.personalities)]
    alias = ollama_details({"format": "lollms", "family": "alias"}, "alias")
    tags += [tag_entry(entry["id"], 0, alias) for entry in await alias_entries(models.bindings)]
    return tags


def _default_details(entries: list[dict[str, Any]], instance_entry: dict[str, Any]) -> dict[str, Any]:
    """For an instance's own entry (its default model): the details of that model, or of its first model."""
    models = [entry for entry in entries if entry["binding"] == instance_entry["binding"] and entry.get("details")]
    chosen = next(
        (entry for entry in models if entry["model"] == instance_entry["model"]), models[0] if models else None
    )
    return dict(chosen["details"]) if chosen else {}


def modelfile(name: str, target: Target, parameters: str) -> str:
    source = f"{target.binding_name}/{target.model_name}" if target.model_name else target.binding_name
    lines = [f"# Modelfile generated by lollms_server for {name}", f"FROM {source}"]
    if target.personality is not None and target.personality.system_prompt:
        lines.append(f'SYSTEM """{target.personality.system_prompt.strip()}"""')
    lines += [f"PARAMETER {line}" for line in parameters.splitlines()]
    return "\n".join(lines) + "\n"


async def show(name: str, target: Target) -> dict[str, Any]:
    """Ollama's /api/show: details, model_info with the context length, capabilities, personality settings."""
    info = await target.binding.get_model_info(target.model_name)
    described = info.get("details") or {}
    details = ollama_details(described, target.binding.binding_type_name)
    family = details["family"]
    model_info: dict[str, Any] = {"general.architecture": family, "general.basename": target.model_name}
    if info.get("context_size"):
        model_info[f"{family}.context_length"] = info["context_size"]
    if described.get("dimensions"):
        model_info[f"{family}.embedding_length"] = described["dimensions"]
    outputs = target.binding.get_supported_output_modalities()
    binding = target.binding
    vision = info.get("supports_vision") or binding.model_supports_input(target.model_name, "image", "input_image")
    capabilities = [
        capability
        for capability, present in (
            ("completion", "ttt" in binding.get_supported_tasks()),
            ("vision", vision),
            ("embedding", "embedding" in outputs and target.personality is None),
        )
        if present
    ]
    personality = target.personality
    parameters = ollama_parameters(personality.parameters if personality else {})
    shown = {
        "modelfile": modelfile(name, target, parameters),
        "parameters": parameters,
        "template": info.get("template") or "{{ .Prompt }}",
        "details": details,
        "model_info": model_info,
        "capabilities": capabilities,
        "modified_at": _STARTED,
    }
    if described.get("license"):
        shown["license"] = described["license"]
    if personality is not None and personality.system_prompt:
        shown["system"] = personality.system_prompt
    return shown


def running_entry(model: dict[str, Any]) -> dict[str, Any]:
    """One loaded model as an /api/ps entry: its lollms model id, size and when it unloads if it stays idle."""
    model_id = f"{model['instance']}/{model['model']}" if model["model"] else model["instance"]
    expires = model.get("expires_at")
    # In use, or kept until evicted: Ollama shows a far-off expiry for models that stay loaded.
    expires_at = timestamp(datetime.fromtimestamp(expires, timezone.utc)) if expires else "2318-01-01T00:00:00Z"
    return {
        "name": model_id,
        "model": model_id,
        "size": model.get("size") or 0,
        "digest": "",
        "details": ollama_details({}, model["instance"]),
        "expires_at": expires_at,
        "size_vram": 0,
    }
