"""Hostile JSON schemas (tool parameters, response formats) through every dialect, against a real server process
with the llama.cpp binding and its embedded model: each is a 400 naming the part, and the server stays up with its
compute slot free. Before the schemas were checked, some of these ended the process (SIGSEGV when sampling began)
and others held the slot for minutes."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.core.client_schemas import check_client_schema
from tests.server import free_port
from tests.user_installs import api_key, started, user_environment

pytest.importorskip("llama_cpp", reason="needs llama-cpp-python (./run_tests.sh installs it)")


def nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


# Each: the schema of a tool's parameters (or of a response format), and a word the 400 must contain.
HOSTILE: dict[str, tuple[dict[str, Any], str]] = {
    "long string": ({"type": "object", "properties": {"s": {"type": "string", "maxLength": 2000}}}, "maxLength"),
    "many items": ({"type": "object", "properties": {"l": {"type": "array", "maxItems": 100000}}}, "maxItems"),
    "huge repetition": (
        {"type": "object", "properties": {"p": {"type": "string", "pattern": "a{0,100000}"}}},
        "pattern",
    ),
    "back-reference": ({"type": "object", "properties": {"p": {"type": "string", "pattern": "(a)\\1"}}}, "pattern"),
    "nested repetitions": (
        {"type": "object", "properties": {"p": {"type": "string", "pattern": "((a{0,64}){0,64}){0,64}"}}},
        "pattern",
    ),
    "empty enum": ({"type": "object", "properties": {"e": {"enum": []}}}, "enum"),
    "recursive": (
        {"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"},
        "recursive",
    ),
    "self": ({"type": "object", "properties": {"me": {"$ref": "#"}}}, "recursive"),
    "missing": ({"type": "object", "properties": {"x": {"$ref": "#/$defs/Nowhere"}}}, "points nowhere"),
    "remote": ({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}, "local"),
    "relative": ({"type": "object", "properties": {"x": {"$ref": "other.json#/a"}}}, "local"),
    "type 7": ({"type": "object", "properties": {"x": {"type": 7}}}, "type"),
    "50 levels": (nested(50), "nested"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_schema_is_refused_naming_the_part(name: str) -> None:
    schema, word = HOSTILE[name]
    with pytest.raises(ValueError, match=word.replace("$", r"\$")):
        check_client_schema(schema, "parameters")


def test_schemas_that_clients_really_send_pass() -> None:
    """What pydantic, the openai SDK's strict mode and LangChain generate: local $defs, anyOf with null, bounds."""
    for schema in (
        {
            "$defs": {"City": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}},
            "type": "object",
            "properties": {
                "city": {"$ref": "#/$defs/City"},
                "days": {"type": "integer", "minimum": 1, "maximum": 14},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "note": {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
                "code": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{1,4}$"},
            },
            "required": ["city"],
            "additionalProperties": False,
        },
        nested(10),
        {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False},
    ):
        check_client_schema(schema, "parameters")


def requests_for(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The same schema as each dialect carries it: tools and response formats."""
    tool = {"type": "function", "function": {"name": "probe", "description": "a probe", "parameters": schema}}
    prompt = [{"type": "text", "role": "user_prompt", "data": "Hi"}]
    chat = [{"role": "user", "content": "Hi"}]
    json_schema = {"type": "json_schema", "json_schema": {"name": "probe", "schema": schema}}
    return [
        ("/api/v1/generate", {"input_data": prompt, "parameters": {"tools": [tool], "max_tokens": 8}}),
        ("/api/v1/generate", {"input_data": prompt, "parameters": {"response_format": json_schema, "max_tokens": 8}}),
        ("/v1/chat/completions", {"model": "llamacpp", "messages": chat, "tools": [tool], "max_tokens": 8}),
        ("/v1/chat/completions", {"model": "llamacpp", "messages": chat, "response_format": json_schema}),
        ("/api/chat", {"model": "llamacpp", "messages": chat, "stream": False, "tools": [tool]}),
        ("/api/chat", {"model": "llamacpp", "messages": chat, "stream": False, "format": schema}),
        (
            "/v1/messages",
            {
                "model": "llamacpp",
                "max_tokens": 8,
                "messages": chat,
                "tools": [{"name": "probe", "description": "a probe", "input_schema": schema}],
            },
        ),
    ]


@pytest.mark.slow
def test_hostile_schemas_through_every_dialect_leave_the_server_up_and_its_slot_free(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "lollms_server", "--port", str(port)]
    with started(command, tmp_path, user_environment()) as console:
        headers = {"X-API-Key": api_key(console), "Authorization": f"Bearer {api_key(console)}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600) as client:
            refused = []
            for name, (schema, word) in HOSTILE.items():
                for path, body in requests_for(copy.deepcopy(schema)):
                    response = client.post(path, json=body)
                    assert response.status_code == 400, (name, path, response.status_code, response.text[:300])
                    assert word in response.text, (name, path, response.text[:300])
                    refused.append((name, path))
                    assert console.process.poll() is None, f"the server died on {name} through {path}"
            assert len(refused) == len(HOSTILE) * 7
            # Alive, and the compute slot free: a grammar-constrained tool call runs to its end.
            tool = {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}},
                },
            }
            answer = client.post(
                "/v1/chat/completions",
                json={
                    "model": "llamacpp",
                    "messages": [{"role": "user", "content": "Weather in Paris?"}],
                    "tools": [tool],
                    "tool_choice": "required",
                    "max_tokens": 48,
                },
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
