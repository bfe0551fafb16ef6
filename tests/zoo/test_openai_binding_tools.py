"""openai_binding passes tools on natively: a lollms_server whose openai_binding points at another lollms_server
(the embedded model, tool calls constrained by llama.cpp's grammar) on loopback, driven by the openai SDK."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from lollms_server.app import create_app
from tests.compat.test_openai_tools import ASK, WEATHER, valid_call
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp")


def backend_config(root: Path):  # type: ignore[no-untyped-def]
    config = make_config(root, bindings_map={"llama": "llamacpp_binding"}, defaults={"ttt_binding": "llama"})
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2})
    return config


def relay_config(root: Path, backend_url: str):  # type: ignore[no-untyped-def]
    config = make_config(root, bindings_map={"remote": "openai_binding"}, defaults={"ttt_binding": "remote"})
    write_instance(
        config,
        "remote",
        {"type": "openai_binding", "base_url": f"{backend_url}/v1", "api_key": TEST_API_KEY, "default_model": "llama"},
    )
    return config


async def test_tools_calls_and_results_pass_through_the_openai_binding(tmp_path: Path) -> None:
    async with serving(create_app(backend_config(tmp_path / "backend"))) as backend_url:
        async with serving(create_app(relay_config(tmp_path / "relay", backend_url))) as relay_url:
            async with openai.AsyncOpenAI(base_url=f"{relay_url}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
                answer = await sdk.chat.completions.create(
                    model="remote", messages=ASK, tools=[WEATHER], tool_choice="required"
                )
                chunks = [
                    chunk
                    async for chunk in await sdk.chat.completions.create(
                        model="remote", messages=ASK, tools=[WEATHER], tool_choice="required", stream=True
                    )
                ]
                [call] = answer.choices[0].message.tool_calls or []
                history: list[Any] = [
                    *ASK,
                    answer.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"},
                ]
                follow_up = await sdk.chat.completions.create(
                    model="remote", messages=history, tools=[WEATHER], tool_choice="none", max_tokens=30
                )
    assert answer.choices[0].finish_reason == "tool_calls"
    valid_call(call.function.name, call.function.arguments)
    deltas = [delta for chunk in chunks if chunk.choices for delta in chunk.choices[0].delta.tool_calls or []]
    streamed_arguments = "".join(delta.function.arguments or "" for delta in deltas if delta.function)
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    valid_call("get_weather", streamed_arguments)
    assert json.loads(streamed_arguments)  # one call, whole
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "tool_calls"
    assert follow_up.choices[0].message.content and not follow_up.choices[0].message.tool_calls
