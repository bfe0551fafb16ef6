"""Strict, schema-driven validation of configuration values.

ConfigGuard silently replaces a bad value with its default; we report every problem instead, one line
each: where it is, what was found, and what is allowed. Secret values are never echoed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# A validator for a dynamic section (schema ``{}``): (key path prefix, section values) -> problems.
DynamicSectionCheck = Callable[[str, Mapping[str, Any]], list[str]]

_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
}
_PLURAL_WORDS = {"str": "strings", "int": "integers", "float": "numbers", "bool": "booleans"}


def is_secret(definition: Mapping[str, Any]) -> bool:
    return bool(definition.get("secret", False))


def shown(value: Any, definition: Mapping[str, Any]) -> str:
    """The value as it may appear in a message: secrets are masked."""
    if is_secret(definition):
        return "'***'"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _has_type(value: Any, type_name: str) -> bool:
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "list":
        return isinstance(value, list)
    return False


def _allowed(definition: Mapping[str, Any]) -> str:
    type_name = definition["type"]
    if definition.get("options") is not None:
        text = "one of " + ", ".join(repr(option) for option in definition["options"])
    else:
        text = _TYPE_WORDS.get(type_name, type_name)
        if type_name == "list" and definition.get("item_type"):
            text += f" of {_PLURAL_WORDS.get(definition['item_type'], definition['item_type'])}"
        low, high = definition.get("min_val"), definition.get("max_val")
        if low is not None and high is not None:
            text += f" between {low} and {high}"
        elif low is not None:
            text += f" >= {low}"
        elif high is not None:
            text += f" <= {high}"
    if definition.get("nullable"):
        text += " (or null)"
    return text


def check_setting(path: str, value: Any, definition: Mapping[str, Any]) -> str | None:
    """Return a problem description for one setting value, or None when it is valid."""
    if value is None:
        return (
            None
            if definition.get("nullable")
            else f"{path} = null: a value is required; allowed: {_allowed(definition)}"
        )
    type_name = definition["type"]
    bad = f"{path} = {shown(value, definition)}: allowed: {_allowed(definition)}"
    if not _has_type(value, type_name):
        return bad
    item_type = definition.get("item_type")
    if type_name == "list" and item_type and not all(_has_type(item, item_type) for item in value):
        return bad
    options = definition.get("options")
    if options is not None and value not in options:
        return bad
    if type_name in ("int", "float"):
        low, high = definition.get("min_val"), definition.get("max_val")
        if (low is not None and value < low) or (high is not None and value > high):
            return bad
    return None


def validate_values(
    values: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    dynamic_checks: Mapping[str, DynamicSectionCheck] | None = None,
    unknown_keys_allowed: bool = False,
    prefix: str = "",
) -> tuple[list[str], list[str]]:
    """Validate ``values`` against a ConfigGuard ``schema``.

    Returns ``(problems, unknown)``: problems are fatal; unknown lists keys the schema does not know,
    which are problems too unless ``unknown_keys_allowed`` (used when migrating an older file).
    """
    problems: list[str] = []
    unknown: list[str] = []
    dynamic_checks = dynamic_checks or {}
    for key, value in values.items():
        path = f"{prefix}{key}"
        definition = schema.get(key) if isinstance(key, str) and not key.startswith("__") else None
        if definition is None:
            unknown.append(path)
            if not unknown_keys_allowed:
                known = ", ".join(k for k in schema if not k.startswith("__"))
                problems.append(f"{path}: unknown option; known options here: {known}")
            continue
        if definition.get("type") == "section":
            if not isinstance(value, Mapping):
                problems.append(f"{path} = {value!r}: must be a section (a mapping of options)")
                continue
            sub_schema = definition.get("schema") or {}
            if sub_schema:
                sub_problems, sub_unknown = validate_values(
                    value,
                    sub_schema,
                    dynamic_checks=dynamic_checks,
                    unknown_keys_allowed=unknown_keys_allowed,
                    prefix=f"{path}.",
                )
                problems += sub_problems
                unknown += sub_unknown
            elif path in dynamic_checks:
                problems += dynamic_checks[path](f"{path}.", value)
            continue
        problem = check_setting(path, value, definition)
        if problem:
            problems.append(problem)
    return problems, unknown


def secret_paths(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of every setting marked ``secret`` in a schema."""
    paths: list[str] = []
    for key, definition in schema.items():
        if key.startswith("__") or not isinstance(definition, Mapping):
            continue
        if definition.get("type") == "section":
            paths += secret_paths(definition.get("schema") or {}, f"{prefix}{key}.")
        elif is_secret(definition):
            paths.append(f"{prefix}{key}")
    return paths


def without_secrets(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``values`` with every setting the schema marks secret removed."""
    result: dict[str, Any] = {}
    for key, value in values.items():
        definition = schema.get(key)
        if isinstance(definition, Mapping):
            if is_secret(definition):
                continue
            if definition.get("type") == "section" and isinstance(value, Mapping):
                sub_schema = definition.get("schema") or {}
                result[key] = without_secrets(value, sub_schema) if sub_schema else dict(value)
                continue
        result[key] = value
    return result
