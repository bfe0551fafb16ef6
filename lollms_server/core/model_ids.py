"""Model ids of the compatible APIs: ``<instance>/<model>``, ``<instance>`` (its default model) and
``personality/<id>`` (a personality on the default binding), so one string selects all three."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.errors import NotFoundError

PERSONALITY_PREFIX = "personality/"


@dataclass(frozen=True)
class ModelChoice:
    binding_name: str | None
    model_name: str | None
    personality: str | None = None


def parse_model_id(model_id: str, instances: Mapping[str, Any]) -> ModelChoice:
    """What a model id selects; NotFoundError when its first part names no binding instance."""
    if model_id.startswith(PERSONALITY_PREFIX):
        return ModelChoice(None, None, model_id[len(PERSONALITY_PREFIX) :])
    instance, _, model = model_id.partition("/")
    if instance not in instances:
        known = ", ".join(sorted(instances)) or "none"
        raise NotFoundError(
            f"model '{model_id}' not found: use '<binding instance>/<model>', '<binding instance>' or "
            f"'personality/<id>' (binding instances: {known})"
        )
    return ModelChoice(instance, model or None)


async def list_model_ids(bindings: BindingManager) -> list[dict[str, Any]]:
    """Every model of every active instance; an instance that cannot list right now keeps its default entry."""
    listed: list[dict[str, Any]] = []
    for name in sorted(bindings.list_active_instances()):
        binding = await bindings.get_binding(name)
        outputs = binding.get_supported_output_modalities()
        listed.append({"id": name, "binding": name, "model": binding.default_model_name, "outputs": outputs})
        try:
            models = await binding.list_available_models()
        except Exception:  # a backend down right now: its default entry is still listed
            continue
        for model in models:
            listed.append(
                {
                    "id": f"{name}/{model['name']}",
                    "binding": name,
                    "model": model["name"],
                    "outputs": outputs,
                    "context_size": model.get("context_size"),
                    "size": model.get("size"),
                    "details": model.get("details"),
                }
            )
    return listed


def personality_model_ids(personalities: Any) -> list[str]:
    """``personality/<id>`` for every available personality (none while the manager is not there)."""
    if personalities is None:
        return []
    return [
        f"{PERSONALITY_PREFIX}{pid}" for pid, info in personalities.list_personalities().items() if info["available"]
    ]
