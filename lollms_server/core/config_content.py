"""Checks on a config file's text before its values are used: the things a format's parser lets through.

YAML and JSON parsers keep the last of two equal keys without a word, accept any top-level value and
expand YAML aliases without bound. Each of these becomes a problem line naming the file (and, for
YAML, the lines). TOML parsers already refuse duplicate keys.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lollms_server.core.config_paths import config_text
from lollms_server.core.errors import ConfigError

MAX_CONFIG_VALUES = 200_000
SQLITE_MAGIC = b"SQLite format 3\x00"
_MERGE_TAG = "tag:yaml.org,2002:merge"
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def no_settings(path: Path) -> str:
    """The problem of a file with nothing in it: never read as "all defaults" (that would disable
    authentication, for instance)."""
    return (
        f"{path}: holds no settings (it is empty or has only comments); a config file that exists "
        "must hold its settings: write them, or remove the file"
    )


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return f"a single value ({type(value).__name__})"


def _not_a_mapping(path: Path, found: str) -> str:
    return f"{path}: cannot be parsed: the top level must be a mapping of settings (key: value), found {found}"


def _too_many(path: Path) -> str:
    return (
        f"{path}: holds more than {MAX_CONFIG_VALUES:,} values (YAML aliases included); "
        "config files are limited to that"
    )


def _yaml_problems(path: Path, text: str) -> list[str]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        return [f"{path}: cannot be parsed: {exc}"]
    if root is None:
        return [no_settings(path)]
    if not isinstance(root, yaml.MappingNode):
        kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
        return [_not_a_mapping(path, kind)]
    problems: list[str] = []
    visits = 0
    checked: set[int] = set()
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, prefix = stack.pop()
        visits += 1
        if visits > MAX_CONFIG_VALUES:
            return [_too_many(path)]
        if isinstance(node, yaml.SequenceNode):
            stack.extend((item, prefix) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            lines: dict[tuple[str, str], list[int]] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                    lines.setdefault((key_node.tag, key_node.value), []).append(key_node.start_mark.line + 1)
                    child = f"{prefix}{key_node.value}."
                else:
                    child = prefix
                stack.append((value_node, child))
            if id(node) not in checked:  # an alias reaches the same node again: report it once
                checked.add(id(node))
                problems += [
                    f"{path}: duplicate key '{prefix}{value}' on lines {_and(found)}; YAML would silently keep "
                    "the last one: keep exactly one"
                    for (_, value), found in lines.items()
                    if len(found) > 1
                ]
    return sorted(problems)


def _and(numbers: list[int]) -> str:
    words = [str(number) for number in sorted(numbers)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


class _JsonObject(dict[str, Any]):
    """A JSON object that remembers which of its keys appeared more than once."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> _JsonObject:
    result = _JsonObject()
    result.duplicates = []
    for key, value in pairs:
        if key in result and key not in result.duplicates:
            result.duplicates.append(key)
        result[key] = value
    return result


def _json_problems(path: Path, text: str) -> list[str]:
    try:
        root = json.loads(text, object_pairs_hook=_json_object)
    except ValueError as exc:
        return [f"{path}: cannot be parsed: {exc}"]
    if not isinstance(root, dict):
        return [_not_a_mapping(path, _kind(root))]
    problems = []
    stack: list[tuple[Any, str]] = [(root, "")]
    while stack:
        value, prefix = stack.pop()
        if isinstance(value, _JsonObject):
            problems += [
                f"{path}: duplicate key '{prefix}{key}'; JSON readers silently keep the last one: keep exactly one"
                for key in value.duplicates
            ]
            stack.extend((child, f"{prefix}{key}.") for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((item, prefix) for item in value)
    return sorted(problems)


def content_problems(path: Path, data: bytes) -> list[str]:
    """Problems in a config file's raw content that its format's parser would let through silently."""
    suffix = path.suffix.lower()
    if suffix in SQLITE_SUFFIXES:
        if data and not data.startswith(SQLITE_MAGIC):
            return [f"{path}: is not an SQLite database (use .yaml, .toml or .json for a text file)"]
        return []
    if suffix not in (".yaml", ".yml", ".json"):
        return []
    try:
        text = config_text(path, data)
    except ConfigError as exc:
        return exc.problems
    try:
        return _json_problems(path, text) if suffix == ".json" else _yaml_problems(path, text)
    except RecursionError:
        return [f"{path}: cannot be parsed: nested too deeply"]
