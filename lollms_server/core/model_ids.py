"""Model ids of the compatible APIs: ``<instance>/<model>``, ``<instance>`` (its default model) and
``personality/<id>`` (a personality on the default binding), so one string selects all three. Lists hold what
the key of the request may use (``core.model_access``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lollms_server.core.errors import LollmsError, NotFoundError
from lollms_server.core.limits import check_name
from lollms_server.core.model_access import ModelAccess

if TYPE_CHECKING:
    from lollms_server.core.bindings import Binding
    from lollms_server.core.config import ServerConfig


class Instances(Protocol):
    """What the listings read of the binding manager (which builds on this module, not the other way)."""

    config: ServerConfig

    def list_active_instances(self) -> dict[str, dict[str, Any]]: ...

    async def get_binding(self, name: str) -> Binding: ...


PERSONALITY_PREFIX = "personality/"


@dataclass(frozen=True)
class ModelChoice:
    binding_name: str | None
    model_name: str | None
    personality: str | None = None


def parse_model_id(
    model_id: str, instances: Mapping[str, Any], aliases: Mapping[str, str] | None = None
) -> ModelChoice:
    """What a model id (or an alias of one, from the ``model_aliases`` section) selects; NotFoundError when its
    first part names no binding instance (ForbiddenError when the key may not use such a name anyway)."""
    check_name("model", model_id)
    model_id = (aliases or {}).get(model_id, model_id)
    if model_id.startswith(PERSONALITY_PREFIX):
        return ModelChoice(None, None, model_id[len(PERSONALITY_PREFIX) :])
    instance, _, model = model_id.partition("/")
    if instance not in instances:
        access = ModelAccess.current()
        access.check_instance(instance)
        known = ", ".join(access.visible_instances(instances)) or "none"
        raise NotFoundError(
            f"model '{model_id}' not found: use '<binding instance>/<model>', '<binding instance>' or "
            f"'personality/<id>' (binding instances: {known})"
        )
    return ModelChoice(instance, model or None)


def check_model_id(choice: ModelChoice) -> None:
    """ForbiddenError when the key of the request may not use what ``choice`` names (by its names alone)."""
    access = ModelAccess.current()
    if choice.personality is not None:
        access.check_personality(choice.personality)
    if choice.binding_name is not None:
        access.check_model(choice.binding_name, choice.model_name)


async def _default_allowed(access: ModelAccess, name: str, binding: Binding) -> bool:
    """Whether the key may use the instance's own entry (its default model)."""
    if access.may_use_model(name, None):
        return True
    try:
        return access.may_use_model(name, binding.default_model_name or await binding.resolve_model(None))
    except LollmsError:
        return False


async def list_model_ids(bindings: Instances) -> list[dict[str, Any]]:
    """Every model of every active instance the key of the request may use; an instance that cannot list right
    now keeps its default entry."""
    access = ModelAccess.current()
    listed: list[dict[str, Any]] = []
    for name in sorted(bindings.list_active_instances()):
        binding = await bindings.get_binding(name)
        outputs = binding.get_supported_output_modalities()
        tasks = binding.get_supported_tasks()
        if await _default_allowed(access, name, binding):
            listed.append(
                {"id": name, "binding": name, "model": binding.default_model_name, "outputs": outputs, "tasks": tasks}
            )
        try:
            models = await binding.list_available_models()
        except Exception:  # a backend down right now: its default entry is still listed
            continue
        for model in models:
            if not access.may_use_model(name, model["name"]):
                continue
            listed.append(
                {
                    "id": f"{name}/{model['name']}",
                    "binding": name,
                    "model": model["name"],
                    "outputs": outputs,
                    "tasks": tasks,
                    "context_size": model.get("context_size"),
                    "size": model.get("size"),
                    "details": model.get("details"),
                }
            )
    return listed


@dataclass(frozen=True)
class ModelIds:
    """What the compatible APIs need to read model ids: the binding instances and the configured aliases."""

    instances: Mapping[str, Any]
    aliases: Mapping[str, str]

    def parse(self, model_id: str) -> ModelChoice:
        return parse_model_id(model_id, self.instances, self.aliases)


async def alias_entries(bindings: Instances) -> list[dict[str, Any]]:
    """The ``model_aliases`` whose target instance is active and allowed to the key of the request, as model list
    entries (``alias_of`` the target)."""
    access = ModelAccess.current()
    active = set(bindings.list_active_instances())
    entries = []
    for alias, target in sorted(bindings.config.model_aliases.items()):
        instance, _, model = target.partition("/")
        if instance == "personality":
            allowed = access.may_use_personality(model)
        elif instance not in active:
            allowed = False
        elif model:
            allowed = access.may_use_model(instance, model)
        else:
            allowed = await _default_allowed(access, instance, await bindings.get_binding(instance))
        if allowed:
            entries.append({"id": alias, "binding": instance, "model": model or None, "alias_of": target})
    return entries


def personality_model_ids(personalities: Any) -> list[str]:
    """``personality/<id>`` for every available personality the key may use (none while the manager is not
    there)."""
    if personalities is None:
        return []
    return [
        f"{PERSONALITY_PREFIX}{pid}" for pid, info in personalities.list_personalities().items() if info["available"]
    ]
