"""Binding instance files: loading one against its type's card, and checking all of ``bindings_map``.

``check_instance_files`` reports, without writing anything, what the server would mark ``error`` at
start: an unknown or unusable type, a missing or broken instance file, an encrypted secret without
(or with the wrong) key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lollms_server.core.binding_types import BindingType, discover_binding_types
from lollms_server.core.config import ServerConfig
from lollms_server.core.config_files import load_config_file
from lollms_server.core.config_paths import CONFIG_EXTENSIONS, find_config_file
from lollms_server.core.errors import ConfigError
from lollms_server.core.secrets import ENCRYPTION_KEY_ENV, SecretCipher, SecretKeyError


@dataclass
class InstanceCheck:
    """What ``check_instance_files`` found: fatal problems, and notes (files a start would migrate)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0
    valid: list[str] = field(default_factory=list)  # the instances whose type and file passed


def type_problem(types: Mapping[str, BindingType], type_name: str) -> str | None:
    """Why instances of ``type_name`` cannot be built, or None."""
    binding_type = types.get(type_name)
    if binding_type is None:
        known = ", ".join(sorted(types)) or "none"
        return f"unknown binding type '{type_name}' (discovered types: {known})"
    if not binding_type.usable or binding_type.card is None or binding_type.cls is None:
        return f"binding type '{type_name}' is unusable: {binding_type.error}"
    if binding_type.missing_requirements:
        return (
            f"binding type '{type_name}' needs missing packages: {', '.join(binding_type.missing_requirements)}; "
            f"install them with `lollms-server install-requirements {type_name}`"
        )
    return None


def load_instance_values(
    folder: Path,
    name: str,
    type_name: str,
    schema: dict[str, Any],
    cipher: SecretCipher | None,
    *,
    migrate: bool = True,
) -> tuple[dict[str, Any], str | None]:
    """The validated values of instance ``name`` and the version a migration starts (or would start) from."""
    path = find_config_file(folder, name)
    if path is None:
        formats = "/".join(ext.lstrip(".") for ext in CONFIG_EXTENSIONS)
        raise ConfigError([f"instance file not found: expected {folder / name}.<{formats}>"])
    loaded = load_config_file(path, schema, cipher=cipher, migrate=migrate)
    values = loaded.values
    problems = []
    if values.get("type") not in (None, "", type_name):
        problems.append(f"{path}: type = {values['type']!r} but bindings_map says '{type_name}'")
    if values.get("binding_instance_name") not in (None, "", name):
        problems.append(
            f"{path}: binding_instance_name = {values['binding_instance_name']!r} must match the file name '{name}'"
        )
    if problems:
        raise ConfigError(problems)
    values["type"] = type_name
    values["binding_instance_name"] = name
    return values, loaded.migrated_from


def configured_cipher(config: ServerConfig) -> SecretCipher | None:
    """The cipher of the key in force, None without a key; ConfigError when the key is malformed."""
    key = config.encryption_key
    if not key:
        return None
    try:
        return SecretCipher(key)
    except SecretKeyError as exc:
        raise ConfigError([f"security.encryption_key (or {ENCRYPTION_KEY_ENV}): {exc}"]) from exc


def check_instance_files(config: ServerConfig) -> InstanceCheck:
    """Check every instance of ``bindings_map`` as the server would at start, writing nothing."""
    result = InstanceCheck()
    try:
        cipher = configured_cipher(config)
    except ConfigError as exc:
        result.problems += exc.problems
        cipher = None
    paths = config.paths
    types = discover_binding_types([(paths.example_bindings_folder, "builtin"), (paths.bindings_folder, "personal")])
    for name, type_name in config.bindings_map.items():
        result.checked += 1
        problem = type_problem(types, type_name)
        card = types[type_name].card if type_name in types else None
        if problem is not None or card is None:
            result.problems.append(f"instance '{name}': {problem}")
            continue
        try:
            _, migrated_from = load_instance_values(
                paths.instance_bindings_folder, name, type_name, card.instance_schema, cipher, migrate=False
            )
        except ConfigError as exc:
            result.problems += [
                line if line.startswith(str(paths.instance_bindings_folder)) else f"instance '{name}': {line}"
                for line in exc.problems
            ]
            continue
        if migrated_from is not None:
            result.notes.append(
                f"instance '{name}': version {migrated_from}; the next start migrates it (after a backup)"
            )
        result.valid.append(name)
    return result
