"""Tool calling through /v1/chat/completions with the official openai SDK, the embedded model and llama.cpp's
grammar: calls that always parse against the tool's schema, streamed as the SDK accumulates them, a full round
trip (call, result, answer), and requests that cannot be served refused with OpenAI's error shape."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in (WEATHER, ADD)}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    config = make_config(tmp_path, bindings_map={"llama": "llamacpp_binding"}, defaults={"ttt_binding": "llama"})
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2})
    async with serving(create_app(config)) as url:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
            yield sdk


def valid_call(name: str, arguments: str) -> dict[str, Any]:
    parsed = json.loads(arguments)
    jsonschema.validate(parsed, SCHEMAS[name])
    return parsed


async def test_required_calls_always_parse_against_the_schema(client: openai.AsyncOpenAI) -> None:
    for seed in range(6):
        answer = await client.chat.completions.create(
            model="llama", messages=ASK, tools=[WEATHER, ADD], tool_choice="required", seed=seed, temperature=1.0
        )
        choice = answer.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        [call] = choice.message.tool_calls or []
        assert call.type == "function" and call.id.startswith("call_")
        valid_call(call.function.name, call.function.arguments)


async def test_a_named_tool_streams_as_the_sdk_accumulates_it(client: openai.AsyncOpenAI) -> None:
    choice = {"type": "function", "function": {"name": "add"}}
    ask = [{"role": "user", "content": "What is 2 plus 3?"}]
    async with client.beta.chat.completions.stream(
        model="llama", messages=ask, tools=[WEATHER, ADD], tool_choice=choice
    ) as stream:
        async for _ in stream:
            pass
        final = await stream.get_final_completion()
    [call] = final.choices[0].message.tool_calls or []
    assert call.function.name == "add" and final.choices[0].finish_reason == "tool_calls"
    valid_call("add", call.function.arguments)


async def test_a_full_round_trip_call_result_answer(client: openai.AsyncOpenAI) -> None:
    first = await client.chat.completions.create(model="llama", messages=ASK, tools=[WEATHER], tool_choice="required")
    message = first.choices[0].message
    [call] = message.tool_calls or []
    history: list[Any] = [
        *ASK,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18 degrees and sunny"},
    ]
    answer = await client.chat.completions.create(
        model="llama", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=40
    )
    assert answer.choices[0].finish_reason in ("stop", "length")
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls


async def test_auto_gives_text_or_a_well_formed_call(client: openai.AsyncOpenAI) -> None:
    for question in ("Say hello.", "What is the weather in Rome?"):
        answer = await client.chat.completions.create(
            model="llama", messages=[{"role": "user", "content": question}], tools=[WEATHER], max_tokens=60
        )
        choice = answer.choices[0]
        if choice.message.tool_calls:
            assert choice.finish_reason == "tool_calls"
            valid_call("get_weather", choice.message.tool_calls[0].function.arguments)
        else:
            assert choice.message.content and not choice.message.content.startswith("<")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "not one of the tools",
        ),
        ({"tool_choice": "required"}, "tool_choice needs tools"),
        ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools.0.function.name"),
        ({"functions": [WEATHER["function"]]}, "send tools"),
        ({"messages": [*ASK, {"role": "tool", "content": "18"}]}, "tool_call_id"),
    ],
)
async def test_what_cannot_be_served_is_a_400_naming_it(
    client: openai.AsyncOpenAI, fields: dict[str, Any], named: str
) -> None:
    body = {"model": "llama", "messages": ASK, **fields}
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(**body)
    assert named in refused.value.message


async def test_generate_takes_tools_and_continues_with_tool_results(client: openai.AsyncOpenAI) -> None:
    """/api/v1/generate: tools in parameters, a function_call output and stream event, tool_result items."""
    question = {"type": "text", "role": "user_prompt", "data": "What is the weather in Paris?"}
    parameters = {"tools": [WEATHER], "tool_choice": "required"}
    base = str(client.base_url).removesuffix("/").removesuffix("/v1")
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": TEST_API_KEY}, timeout=300) as http:
        answer = await http.post("/api/v1/generate", json={"input_data": [question], "parameters": parameters})
        streamed = await http.post(
            "/api/v1/generate", json={"input_data": [question], "parameters": parameters, "stream": True}
        )
        assert answer.status_code == 200, answer.text
        [call] = [output["data"] for output in answer.json()["output"] if output["type"] == "function_call"]
        follow_up = [
            question,
            {"type": "text", "role": "assistant_reply", "data": "", "metadata": {"tool_calls": [call]}},
            {"type": "text", "role": "tool_result", "data": "18 degrees", "metadata": {"tool_call_id": call["id"]}},
        ]
        continued = await http.post(
            "/api/v1/generate", json={"input_data": follow_up, "parameters": {"max_tokens": 30}}
        )
        orphan = await http.post(
            "/api/v1/generate", json={"input_data": [question, {"type": "text", "role": "tool_result", "data": "x"}]}
        )
    valid_call(call["name"], call["arguments"])
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    [event] = [event for event in events if event["type"] == "function_call"]
    valid_call(event["content"]["name"], event["content"]["arguments"])
    final = events[-1]
    assert final["type"] == "final" and final["metadata"]["finish_reason"] == "tool_calls"
    assert [output["type"] for output in final["content"]] == ["text", "function_call"]
    assert continued.status_code == 200 and continued.json()["output"][0]["data"]
    assert orphan.status_code == 400 and "tool_call_id" in orphan.json()["detail"]


async def test_tool_assistant_runs_the_embedded_models_calls_on_the_server(client: openai.AsyncOpenAI) -> None:
    """Server-side tools with the real model: a grammar-valid call to math_tools.evaluate, run by the server, its
    result given back, then an answer in text."""
    base = str(client.base_url).removesuffix("/").removesuffix("/v1")
    body = {
        "input_data": [{"type": "text", "role": "user_prompt", "data": "What is 12*7+1?"}],
        "personality": "tool_assistant",
        "parameters": {"use_tools": "required", "max_tokens": 60},
    }
    async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": TEST_API_KEY}, timeout=300) as http:
        answer = await http.post("/api/v1/generate", json=body)
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["output"]
    calls = [output["data"] for output in outputs if output["type"] == "function_call"]
    assert calls and calls[0]["name"] in ("math_tools.evaluate", "datetime_tools.now")
    assert "result" in calls[0] and json.loads(calls[0]["arguments"]) is not None
    assert any(output["type"] == "text" and output["data"] for output in outputs)
