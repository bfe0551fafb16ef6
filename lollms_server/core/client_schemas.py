"""JSON schemas sent by clients (tool parameters, ``response_format``), checked and bounded before any library sees
them. llama.cpp turns a schema into a sampling grammar whose size grows with every bound in it: ``maxLength: 2000``
or an empty ``enum`` crash the process (SIGSEGV) when sampling starts, ``pattern: "a{0,100000}"`` or 50 nested
levels take minutes to build. Remote backends get the same schemas, so the same rules apply to every binding.

What is refused (a ValueError naming the part, which the API answers with a 400):
- more than MAX_DEPTH levels of nesting, or more than MAX_NODES schemas in all;
- a ``type`` that is not one of JSON's seven, or a list of them;
- an empty ``enum``, or one of more than MAX_ENUM values;
- ``minLength``/``maxLength`` above MAX_STRING_BOUND, ``minItems``/``maxItems``/``minProperties``/``maxProperties``
  above MAX_COUNT_BOUND, or any of them not a non-negative integer;
- a ``pattern`` longer than MAX_PATTERN_CHARS, not a regular expression, with a back-reference, or whose bounded
  repetitions (``{m,n}``) exceed MAX_REPEAT each or MAX_REPEAT_PRODUCT nested;
- a ``$ref`` that is not local (``#/...``), points nowhere, or is recursive (grammars need a base case that a
  schema cannot promise).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MAX_DEPTH = 16
MAX_NODES = 2000
MAX_ENUM = 256
MAX_STRING_BOUND = 256
MAX_COUNT_BOUND = 64
MAX_PATTERN_CHARS = 256
MAX_REPEAT = 64
MAX_REPEAT_PRODUCT = 1024
JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
_STRING_BOUNDS = ("minLength", "maxLength")
_COUNT_BOUNDS = ("minItems", "maxItems", "minProperties", "maxProperties")
# Keywords whose value is one schema, a list of schemas, or a map of names to schemas.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else", "additionalItems")
_LIST = ("anyOf", "oneOf", "allOf", "prefixItems")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=")
_BOUNDED_REPEAT = re.compile(r"\{(\d*)(,?)(\d*)\}")


def check_client_schema(schema: Any, where: str) -> None:
    """Refuse a schema outside the bounds above; ``where`` names it in the message (e.g. "tools[0].parameters")."""
    _Checker(schema, where).run()


class _Checker:
    def __init__(self, root: Any, where: str) -> None:
        self.root = root
        self.where = where
        self.nodes = 0

    def fail(self, path: str, problem: str) -> None:
        raise ValueError(f"{self.where}{path}: {problem}")

    def run(self) -> None:
        if not isinstance(self.root, dict):
            self.fail("", "a JSON schema must be an object")
        self.visit(self.root, "", depth=0, resolving=())

    def visit(self, schema: Any, path: str, depth: int, resolving: tuple[str, ...]) -> None:
        if isinstance(schema, bool):  # true / false: anything / nothing
            return
        if not isinstance(schema, dict):
            self.fail(path, "must be a JSON schema (an object)")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(path, f"the schema has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH:
            self.fail(path, f"nested more than {MAX_DEPTH} levels deep")
        self.check_keywords(schema, path)
        reference = schema.get("$ref")
        if reference is not None:
            target = self.resolve(reference, f"{path}.$ref")
            if reference in resolving:
                self.fail(f"{path}.$ref", f"'{reference}' refers to itself (recursive schemas are not supported)")
            self.visit(target, f"{path}.$ref", depth + 1, (*resolving, reference))
        for child_path, child in self.children(schema, path):
            self.visit(child, child_path, depth + 1, resolving)

    def children(self, schema: dict[str, Any], path: str) -> Iterator[tuple[str, Any]]:
        for key in _ONE:
            if key == "items" and isinstance(schema.get(key), list):  # draft 4's tuple form
                yield from ((f"{path}.items[{index}]", item) for index, item in enumerate(schema[key]))
            elif key in schema:
                yield f"{path}.{key}", schema[key]
        for key in _LIST:
            if key in schema:
                if not isinstance(schema[key], list) or (key != "prefixItems" and not schema[key]):
                    self.fail(f"{path}.{key}", "must be a non-empty list of schemas")
                for index, item in enumerate(schema[key]):
                    yield f"{path}.{key}[{index}]", item
        for key in _MAP:
            if key in schema:
                if not isinstance(schema[key], dict):
                    self.fail(f"{path}.{key}", "must be an object mapping names to schemas")
                for name, item in schema[key].items():
                    yield f"{path}.{key}.{name}", item

    def check_keywords(self, schema: dict[str, Any], path: str) -> None:
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        if not all(isinstance(item, str) and item in JSON_TYPES for item in kinds) or (
            isinstance(kind, list) and not kind
        ):
            self.fail(f"{path}.type", f"must be one of {', '.join(sorted(JSON_TYPES))}, or a list of them")
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                self.fail(f"{path}.enum", "must be a non-empty list (nothing could match an empty one)")
            if len(values) > MAX_ENUM:
                self.fail(f"{path}.enum", f"may list at most {MAX_ENUM} values")
        bounds = [(key, MAX_STRING_BOUND) for key in _STRING_BOUNDS] + [(key, MAX_COUNT_BOUND) for key in _COUNT_BOUNDS]
        for key, bound in bounds:
            if key in schema:
                value = schema[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    self.fail(f"{path}.{key}", "must be a non-negative integer")
                if value > bound:
                    self.fail(f"{path}.{key}", f"may be at most {bound} (a bound becomes grammar rules)")
        if "pattern" in schema:
            self.check_pattern(schema["pattern"], f"{path}.pattern")

    def check_pattern(self, pattern: Any, path: str) -> None:
        if not isinstance(pattern, str):
            self.fail(path, "must be a string")
        if len(pattern) > MAX_PATTERN_CHARS:
            self.fail(path, f"may have at most {MAX_PATTERN_CHARS} characters")
        if _BACKREFERENCE.search(pattern):
            self.fail(path, "back-references cannot be sampled")
        try:
            re.compile(pattern)
        except re.error as exc:
            self.fail(path, f"not a regular expression: {exc}")
        # The grammar copies a group once per repetition: the bounds multiply along the nesting of groups.
        largest = [1]  # per open group: the largest expansion of what it holds so far
        index = 0
        while index < len(pattern):
            char = pattern[index]
            if char == "\\":
                index += 2
                continue
            if char == "[":
                index = _class_end(pattern, index)
                continue
            if char == "(":
                largest.append(1)
            elif char == ")" and len(largest) > 1:
                inner = largest.pop()
                repeat, index = self.repetition(pattern, index + 1, path)
                if inner * repeat > MAX_REPEAT_PRODUCT:
                    self.fail(path, f"nested repetitions may expand a group at most {MAX_REPEAT_PRODUCT} times")
                largest[-1] = max(largest[-1], inner * repeat)
                continue
            elif char == "{":
                repeat, after = self.repetition(pattern, index, path)
                if after != index:
                    largest[-1] = max(largest[-1], repeat)
                    index = after
                    continue
            index += 1

    def repetition(self, pattern: str, index: int, path: str) -> tuple[int, int]:
        """The upper bound of a ``{m,n}`` at ``index`` (1 when there is none) and the index after it."""
        match = _BOUNDED_REPEAT.match(pattern, index)
        if not match or not (match.group(1) or match.group(3)):
            return 1, index
        low, comma, high = match.group(1), match.group(2), match.group(3)
        repeat = int(high) if high else int(low or 0) if comma else int(low)  # {m,}: m copies, then a star
        if repeat > MAX_REPEAT:
            self.fail(path, f"a repetition {match.group(0)} may repeat at most {MAX_REPEAT} times")
        return max(repeat, 1), match.end()

    def resolve(self, reference: Any, path: str) -> Any:
        if not isinstance(reference, str) or not reference.startswith("#"):
            self.fail(path, "only local references ('#/$defs/Name') are supported")
        node: Any = self.root
        for part in [p for p in reference[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                self.fail(path, f"'{reference}' points nowhere in this schema")
            node = node[part]
        return node


def _class_end(pattern: str, index: int) -> int:
    """The index after the character class that opens at ``index``."""
    index += 1
    if index < len(pattern) and pattern[index] == "^":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 2 if pattern[index] == "\\" else 1
    return index + 1
