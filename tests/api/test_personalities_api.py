"""Personalities and functions through /generate and the listing endpoints, over a recording binding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from tests.api.test_generate import parse_sse, scripted_config
from tests.conftest import running_client
from tests.core.test_personalities import basic, write_personality
from tests.helpers import prompt, scripted_calls

WORKFLOWS = {
    "returns_str": 'async def run_workflow(prompt, params, context):\n    return "plain " + prompt\n',
    "returns_dict": (
        "async def run_workflow(prompt, params, context):\n"
        '    return {"type": "json", "data": {"echo": prompt, "has_binding": context["binding"] is not None}}\n'
    ),
    "returns_list": (
        "async def run_workflow(prompt, params, context):\n"
        '    return [{"type": "text", "data": "first <think>hmm</think>"}, {"type": "info", "data": "done"}]\n'
    ),
    "returns_stream": (
        "async def run_workflow(prompt, params, context):\n"
        "    async def chunks():\n"
        '        yield {"type": "info", "content": "starting"}\n'
        '        for piece in ["str", "eam", "ed"]:\n'
        '            yield {"type": "chunk", "content": piece}\n'
        "    return chunks()\n"
    ),
    "is_generator": (
        "async def run_workflow(prompt, params, context):\n"
        '    text = await context["generate_text"]("inner " + prompt)\n'
        '    yield {"type": "chunk", "content": text}\n'
        '    yield {"type": "final", "content": [{"type": "text", "data": text + "!"}]}\n'
    ),
    "fails": "async def run_workflow(prompt, params, context):\n    raise ValueError('no can do')\n",
    "fails_midway": (
        "async def run_workflow(prompt, params, context):\n"
        '    yield {"type": "chunk", "content": "half"}\n'
        "    raise KeyError('lost')\n"
    ),
}

EXPECTED_OUTPUTS = {
    "returns_str": [("text", "plain hi")],
    "returns_dict": [("json", {"echo": "hi", "has_binding": True})],
    "returns_list": [("text", "first "), ("info", "done")],
    "returns_stream": [("text", "streamed"), ("info", "starting")],
    "is_generator": [("text", "Hello world!")],
}


def personality_config(tmp_path: Path, **sections: Any):  # type: ignore[no-untyped-def]
    config = scripted_config(tmp_path, **sections)
    root = config.paths.personalities_folder
    write_personality(
        root,
        "poet",
        basic(
            "Poet",
            personality_conditioning="You write poems.",
            model_temperature=0.9,
            model_n_predicts=33,
            model_top_k=12,
            anti_prompts=["!@>User"],
            prompts_list=["a poem about the sea"],
        ),
    )
    for name, code in WORKFLOWS.items():
        write_personality(root, name, basic(name), code)
    return config


async def test_conditioning_and_model_parameters_reach_the_binding(tmp_path: Path) -> None:
    config = personality_config(tmp_path)
    body = {
        "input_data": [prompt("Be short.", "system_context"), prompt("the sea")],
        "personality": "poet",
        "parameters": {"top_k": 5, "stop": ["END"]},
    }
    async with running_client(create_app(config)) as client:
        response = await client.post("/api/v1/generate", json=body)
        by_name = await client.post("/api/v1/generate", json={**body, "personality": "Poet"})
    assert response.status_code == 200 and response.json()["personality"] == "poet"
    assert by_name.status_code == 200
    call = scripted_calls()[-1]
    assert call["request_info"]["messages"][0] == {"role": "system", "content": "You write poems.\n\nBe short."}
    assert call["params"] == {"max_tokens": 33, "temperature": 0.9, "top_k": 5, "stop": ["!@>User", "END"]}


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUTS))
async def test_every_workflow_return_kind_in_both_modes(tmp_path: Path, name: str) -> None:
    config = personality_config(tmp_path)
    body = {"input_data": [prompt("hi")], "personality": name}
    async with running_client(create_app(config)) as client:
        plain = await client.post("/api/v1/generate", json=body)
        streamed = await client.post("/api/v1/generate", json={**body, "stream": True})
    assert plain.status_code == 200, plain.text
    outputs = plain.json()["output"]
    assert [(output["type"], output["data"]) for output in outputs] == EXPECTED_OUTPUTS[name]
    events, _ = parse_sse(streamed.text)
    assert events[-1]["type"] == "final"
    assert [(output["type"], output["data"]) for output in events[-1]["content"]][:1] == EXPECTED_OUTPUTS[name][:1]
    if name == "returns_list":
        assert outputs[0]["thoughts"] == "hmm"
    if name == "returns_stream":
        assert [event["type"] for event in events] == ["info", "chunk", "chunk", "chunk", "final"]


async def test_workflow_errors_become_error_outputs(tmp_path: Path) -> None:
    config = personality_config(tmp_path)
    async with running_client(create_app(config)) as client:
        plain = await client.post("/api/v1/generate", json={"input_data": [prompt("x")], "personality": "fails"})
        stream = await client.post(
            "/api/v1/generate", json={"input_data": [prompt("x")], "personality": "fails_midway", "stream": True}
        )
        after = await client.post("/api/v1/generate", json={"input_data": [prompt("x")], "personality": "poet"})
    assert plain.status_code == 200
    error = plain.json()["output"][0]
    assert error["type"] == "error" and "'fails' failed: ValueError: no can do" in error["data"]
    events, _ = parse_sse(stream.text)
    assert [event["type"] for event in events] == ["chunk", "error", "final"]
    assert "KeyError" in events[1]["content"]
    assert after.status_code == 200  # the server carries on


async def test_listing_endpoints_and_icons(tmp_path: Path) -> None:
    config = personality_config(tmp_path)
    async with running_client(create_app(config)) as client:
        listed = (await client.get("/api/v1/list_personalities")).json()
        icon = await client.get("/api/v1/personalities/artbot/icon")
        no_icon = await client.get("/api/v1/personalities/poet/icon")
        functions = (await client.get("/api/v1/list_functions")).json()
        unknown = await client.post("/api/v1/generate", json={"input_data": [prompt("x")], "personality": "ghost"})
    personalities = listed["personalities"]
    assert {"poet", "artbot", "lollms", "tool_assistant", "returns_str"} <= set(personalities)
    assert personalities["returns_str"]["is_scripted"] and not personalities["poet"]["is_scripted"]
    assert icon.status_code == 200 and icon.content.startswith(b"\x89PNG")
    assert no_icon.status_code == 404
    assert "math_tools.evaluate" in functions["functions"] and "datetime_tools.now" in functions["functions"]
    assert unknown.status_code == 404


async def test_artbot_says_clearly_when_no_image_binding_exists(tmp_path: Path) -> None:
    config = personality_config(tmp_path)
    async with running_client(create_app(config)) as client:
        response = await client.post(
            "/api/v1/generate", json={"input_data": [prompt("a lighthouse at dawn")], "personality": "artbot"}
        )
    outputs = response.json()["output"]
    assert [output["type"] for output in outputs] == ["text", "info"]
    assert "no text-to-image binding is configured" in outputs[1]["data"]


async def test_tool_assistant_runs_the_calls_the_model_makes(tmp_path: Path) -> None:
    """The scripted model calls the first tool (math_tools.evaluate) until it has a result, then answers."""
    config = personality_config(tmp_path)
    body = {
        "input_data": [prompt("What is 12*7+1?")],
        "personality": "tool_assistant",
        "parameters": {"call_arguments": {"expression": "12*7+1"}},
    }
    async with running_client(create_app(config)) as client:
        streamed = await client.post("/api/v1/generate", json={**body, "stream": True})
        plain = await client.post("/api/v1/generate", json=body)
        chat = await client.post(
            "/v1/chat/completions",
            json={"model": "personality/tool_assistant", "messages": [{"role": "user", "content": "12*7+1?"}]},
        )
    events, _ = parse_sse(streamed.text)
    [call] = [event["content"] for event in events if event["type"] == "function_call"]
    assert call["name"] == "math_tools.evaluate" and call["result"] == "85"
    assert call["arguments"] == '{"expression": "12*7+1"}'
    assert any(event["type"] == "info" and "returned: 85" in event["content"] for event in events)
    final = events[-1]
    assert final["metadata"].get("finish_reason") != "tool_calls"  # the server ran the call: nothing for the client
    assert [output["type"] for output in plain.json()["output"]] == ["text", "function_call", "info"]
    assert plain.json()["output"][0]["data"] == "Hello world"
    # Through OpenAI's API the server's own calls are not tool calls for the client to run.
    message = chat.json()["choices"][0]
    assert message["finish_reason"] != "tool_calls" and "tool_calls" not in message["message"]
    calls = scripted_calls()[-2:]  # the two rounds of the chat request: a call, then the answer
    assert calls[0]["params"]["tools"][0]["function"]["name"] == "math_tools__evaluate"
    assert calls[1]["request_info"]["messages"][-1]["role"] == "tool"


async def test_code_executing_personality_is_off_by_default_and_runs_isolated_when_enabled(tmp_path: Path) -> None:
    code = "```python\nimport os\nprint(6 * 7, 'OPENAI_API_KEY' in os.environ)\n```"
    body = {
        "input_data": [prompt("compute 6*7")],
        "personality": "python_builder_executor",
        "parameters": {"chunks": [code]},
    }
    async with running_client(create_app(personality_config(tmp_path / "off"))) as client:
        refused = await client.post("/api/v1/generate", json=body)
    enabled = personality_config(tmp_path / "on", personalities_config={"python_builder_executor": {"enabled": True}})
    async with running_client(create_app(enabled)) as client:
        response = await client.post("/api/v1/generate", json=body)
    assert refused.status_code == 404 and "disabled" in refused.json()["detail"]
    outputs = response.json()["output"]
    assert outputs[0]["data"].startswith("```python")
    assert outputs[1]["data"]["stdout"] == "42 False\n" and outputs[1]["data"]["exit_code"] == 0
