"""Compact UTF-8 JSON for the wire, fast: orjson, with the standard library for what orjson refuses (integers past
64 bits, keys that are not strings, lone surrogates), so that any value json.dumps encodes still goes out (then as
ASCII, a lone surrogate escaped rather than sent as invalid UTF-8)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, separators=(",", ":")).encode("ascii")
