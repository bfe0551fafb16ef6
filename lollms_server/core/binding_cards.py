"""``binding_card.yaml``: reading and validating a binding type's metadata and instance schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from configguard import ConfigGuard
from configguard.exceptions import ConfigGuardError
from packaging.version import InvalidVersion, Version

from lollms_server.core.config_files import quiet_configguard
from lollms_server.core.errors import ConfigError
from lollms_server.core.tasks import TASKS, tasks_for_modalities

CARD_FILE = "binding_card.yaml"
# Keys of an instance entry in list responses; an instance schema may not use them.
RESERVED_INSTANCE_KEYS = ("status", "error")
_REQUIRED_TEXT_FIELDS = ("type_name", "display_name", "author", "description")


@dataclass(frozen=True)
class BindingCard:
    type_name: str
    display_name: str
    version: str
    author: str
    description: str
    instance_schema: dict[str, Any]
    requirements: list[str] = field(default_factory=list)
    # The pyproject.toml extra installing exactly ``requirements`` (None: the core dependencies hold them).
    extra: str | None = None
    supports_streaming: bool = False
    documentation_url: str | None = None
    supported_input_modalities: list[str] = field(default_factory=list)
    supported_output_modalities: list[str] = field(default_factory=list)
    # The generation types the binding runs (None: every task its modalities fit, for cards that predate this).
    supported_tasks: list[str] | None = None

    def public_info(self) -> dict[str, Any]:
        return {
            "type_name": self.type_name,
            "display_name": self.display_name,
            "version": self.version,
            "author": self.author,
            "description": self.description,
            "requirements": list(self.requirements),
            "extra": self.extra,
            "supports_streaming": self.supports_streaming,
            "documentation_url": self.documentation_url,
            "supported_input_modalities": list(self.supported_input_modalities),
            "supported_output_modalities": list(self.supported_output_modalities),
            "supported_tasks": list(self.supported_tasks) if self.supported_tasks is not None else None,
            "instance_schema": self.instance_schema,
        }


def _string_list(card: dict[str, Any], key: str, problems: list[str]) -> list[str]:
    value = card.get(key) or []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        problems.append(f"{key}: must be a list of strings")
        return []
    return value


def _check_tasks(card: dict[str, Any], inputs: list[str], outputs: list[str], problems: list[str]) -> list[str] | None:
    if card.get("supported_tasks") is None:
        return None
    declared = _string_list(card, "supported_tasks", problems)
    fitting = tasks_for_modalities(inputs, outputs)
    for task in declared:
        if task not in TASKS:
            problems.append(f"supported_tasks: unknown task {task!r}; the tasks are {', '.join(TASKS)}")
        elif task not in fitting:
            problems.append(
                f"supported_tasks: {task!r} ({TASKS[task].description}) needs {sorted(TASKS[task].needed_modalities)}"
                f" in, {TASKS[task].output} out, which the card's modalities do not offer"
            )
    return declared


def _check_instance_schema(type_name: str, schema: Any, problems: list[str]) -> dict[str, Any]:
    if not isinstance(schema, dict):
        problems.append("instance_schema: must be a mapping (a ConfigGuard schema)")
        return {}
    schema = dict(schema)
    try:
        Version(str(schema.get("__version__", "")))
    except InvalidVersion:
        problems.append("instance_schema.__version__: required, a version number such as '1.0'")
    schema["__version__"] = str(schema.get("__version__", "0"))
    for reserved in RESERVED_INSTANCE_KEYS:
        if reserved in schema:
            problems.append(f"instance_schema.{reserved}: reserved name; rename this setting")
    # The spec asks cards to declare these two; add them when a card forgot.
    schema.setdefault("type", {"type": "str", "default": type_name, "help": "Binding type name."})
    schema.setdefault("binding_instance_name", {"type": "str", "default": "", "help": "Instance name (the file stem)."})
    quiet_configguard()
    try:
        ConfigGuard(schema=schema)
    except (ConfigGuardError, TypeError, ValueError) as exc:
        problems.append(f"instance_schema: not a valid ConfigGuard schema: {exc}")
    return schema


def load_card(folder: Path) -> BindingCard:
    """Parse and validate ``folder/binding_card.yaml``; ConfigError lists every problem."""
    path = folder / CARD_FILE
    try:
        card = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: cannot be read: {exc}"]) from exc
    if not isinstance(card, dict):
        raise ConfigError([f"{path}: must be a mapping of card fields"])
    problems: list[str] = []
    for key in _REQUIRED_TEXT_FIELDS:
        if not isinstance(card.get(key), str) or not card[key].strip():
            problems.append(f"{key}: required, a non-empty string")
    if card.get("version") is None:
        problems.append("version: required")
    if not isinstance(card.get("supports_streaming", False), bool):
        problems.append("supports_streaming: must be true or false")
    type_name = str(card.get("type_name") or folder.name)
    schema = _check_instance_schema(type_name, card.get("instance_schema"), problems)
    requirements = _string_list(card, "requirements", problems)
    extra = card.get("extra")
    if extra is not None and (not isinstance(extra, str) or not extra.strip()):
        problems.append("extra: must be the name of a pyproject.toml extra, or null")
    inputs = _string_list(card, "supported_input_modalities", problems)
    outputs = _string_list(card, "supported_output_modalities", problems)
    tasks = _check_tasks(card, inputs, outputs, problems)
    if problems:
        raise ConfigError([f"{path}: {problem}" for problem in problems])
    return BindingCard(
        type_name=type_name,
        display_name=card["display_name"],
        version=str(card["version"]),
        author=card["author"],
        description=card["description"],
        instance_schema=schema,
        requirements=requirements,
        extra=extra,
        supports_streaming=card.get("supports_streaming", False),
        documentation_url=card.get("documentation_url"),
        supported_input_modalities=inputs,
        supported_output_modalities=outputs,
        supported_tasks=tasks,
    )
