"""ollama_binding passes tools on natively: a lollms_server whose ollama_binding points at another lollms_server's
Ollama API (its scripted binding calls the first tool) on loopback; the calls come back through both."""

from __future__ import annotations

import json
from pathlib import Path

import openai

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, scripted_and_e5_config, scripted_calls, write_instance
from tests.server import serving

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


async def test_tool_calls_and_results_cross_the_ollama_binding(tmp_path: Path) -> None:
    async with serving(create_app(scripted_and_e5_config(tmp_path / "backend"))) as backend_url:
        relay = make_config(tmp_path / "relay", bindings_map={"ol": "ollama_binding"}, defaults={"ttt_binding": "ol"})
        write_instance(
            relay,
            "ol",
            {
                "type": "ollama_binding",
                "host": backend_url,
                "api_key": TEST_API_KEY,
                "default_model": "scripted/model-a",
            },
        )
        async with serving(create_app(relay)) as relay_url:
            async with openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
                ask = [{"role": "user", "content": "weather?"}]
                answer = await sdk.chat.completions.create(model="ol", messages=ask, tools=[WEATHER])
                [call] = answer.choices[0].message.tool_calls or []
                history = [
                    *ask,
                    answer.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
                ]
                follow_up = await sdk.chat.completions.create(
                    model="ol", messages=history, tools=[WEATHER], tool_choice="none"
                )
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    # What the backend's binding saw: the call (with the id the backend's Ollama API gave it) and the result.
    messages = scripted_calls()[-1]["request_info"]["messages"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert messages[2]["role"] == "tool" and messages[2]["content"] == "18 degrees"
    assert messages[2]["tool_call_id"] == messages[1]["tool_calls"][0]["id"]
    assert follow_up.choices[0].message.content == "Hello world" and not follow_up.choices[0].message.tool_calls
