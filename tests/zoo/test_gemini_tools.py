"""gemini_binding's native function calling against the loopback Gemini server: our tools as function
declarations, tool_choice as the calling mode, calls back as function_call outputs (streamed and not), and
results sent as function responses named after their call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WEATHER_TOOL, prompt
from tests.zoo.gemini_server import proto_field
from tests.zoo.test_gemini_binding import gemini_client, generate, parse_sse

pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")

CLOCK = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}


def calls(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [output["data"] for output in outputs if output["type"] == "function_call"]


async def test_tools_go_as_declarations_and_calls_come_back(tmp_path: Path) -> None:
    named = {"tools": [CLOCK, WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    async with gemini_client(tmp_path) as (client, fake):
        required = await generate(client, [prompt("Paris")], parameters=named)
        sent = fake.last("generate").body
        streamed = await generate(client, [prompt("Rome")], parameters=named, stream=True)
        auto_text = await generate(client, [prompt("hello")], parameters={"tools": [WEATHER_TOOL]})
        none = await generate(
            client, [prompt("please call it")], parameters={"tools": [WEATHER_TOOL], "tool_choice": "none"}
        )
        none_sent = fake.last("generate").body
    assert required.status_code == 200, required.text
    [call] = calls(required.json()["output"])
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "Paris"}
    declarations = sent["tools"][0]["functionDeclarations"]
    assert [declaration["name"] for declaration in declarations] == ["now", "get_weather"]
    assert proto_field(declarations[1], "parametersJsonSchema") == WEATHER_TOOL["function"]["parameters"]
    assert sent["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    events = parse_sse(streamed.text)
    [event] = [event for event in events if event["type"] == "function_call"]
    assert json.loads(event["content"]["arguments"]) == {"city": "Rome"}
    assert events[-1]["metadata"]["finish_reason"] == "tool_calls"
    assert auto_text.json()["output"][0]["data"] == "Echo: hello" and not calls(auto_text.json()["output"])
    assert none_sent["toolConfig"]["functionCallingConfig"]["mode"] == "NONE" and not calls(none.json()["output"])


async def test_tool_results_go_back_as_function_responses(tmp_path: Path) -> None:
    call = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    items = [
        prompt("weather?"),
        {"type": "text", "role": "assistant_reply", "data": "", "metadata": {"tool_calls": [call]}},
        {"type": "text", "role": "tool_result", "data": "18 degrees", "metadata": {"tool_call_id": "call_1"}},
    ]
    async with gemini_client(tmp_path) as (client, fake):
        answer = await generate(client, items, parameters={"tools": [WEATHER_TOOL]})
        contents = fake.last("generate").body["contents"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["output"][0]["data"] == "Echo:  [get_weather said 18 degrees]"
    assert contents[1]["role"] == "model"
    assert contents[1]["parts"][0]["functionCall"] == {"id": "call_1", "name": "get_weather", "args": {"city": "Paris"}}
    response = contents[2]["parts"][0]["functionResponse"]
    assert contents[2]["role"] == "user" and response["name"] == "get_weather"
    assert response["response"] == {"result": "18 degrees"}
