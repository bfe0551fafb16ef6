"""Agent frameworks pointed at the server call tools, get the results back into the conversation and answer:
LangChain (ChatOpenAI and ChatOllama with bind_tools) and litellm (its openai/, ollama_chat/ and anthropic/
providers), against the real server: the embedded model under llama.cpp's tool grammar, and the scripted
binding (which always calls the first tool) where the API has no way to require a call."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, WEATHER_TOOL, add_scripted_binding, make_config, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price list

ASK = "What is the weather in Paris?"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    config = make_config(
        tmp_path,
        bindings_map={"llama": "llamacpp_binding", "scripted": "scripted_binding"},
        defaults={"ttt_binding": "llama"},
    )
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2, "seed": 42})
    add_scripted_binding(config, default_model="model-a")
    async with serving(create_app(config)) as url:
        yield url


async def test_langchain_chat_openai_binds_tools_and_finishes_the_round_trip(server: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server}/v1", api_key=TEST_API_KEY, model="llama", max_tokens=60, max_retries=0)  # type: ignore[arg-type]
    with_tools = llm.bind_tools([WEATHER_TOOL], tool_choice="required")
    question = HumanMessage(ASK)
    called = await with_tools.ainvoke([question])
    [call] = called.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_weather" and isinstance(call["args"]["city"], str)
    answer = await llm.ainvoke([question, called, ToolMessage("18 degrees", tool_call_id=call["id"])])
    assert isinstance(answer.content, str) and answer.content and not answer.tool_calls  # type: ignore[attr-defined]


async def test_langchain_chat_ollama_binds_tools(server: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_ollama import ChatOllama

    headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
    llm = ChatOllama(base_url=server, model="scripted", client_kwargs={"headers": headers})
    called = await llm.bind_tools([WEATHER_TOOL]).ainvoke([HumanMessage(ASK)])
    [call] = called.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_weather" and call["args"] == {"city": "Paris"}
    answer = await llm.ainvoke([HumanMessage(ASK), called, ToolMessage("18 degrees", tool_call_id=call["id"])])
    assert answer.content == "Hello world"


async def test_litellm_through_its_openai_ollama_and_anthropic_providers(server: str) -> None:
    import litellm

    messages: list[dict[str, Any]] = [{"role": "user", "content": ASK}]

    def complete(model: str, api_base: str, **extra: Any) -> Any:
        return litellm.completion(
            model=model, api_base=api_base, api_key=TEST_API_KEY, messages=messages, tools=[WEATHER_TOOL], **extra
        )

    via_openai, via_ollama, via_anthropic = await asyncio.gather(
        asyncio.to_thread(complete, "openai/llama", f"{server}/v1", tool_choice="required", max_tokens=60),
        asyncio.to_thread(complete, "ollama_chat/scripted", server),
        asyncio.to_thread(complete, "anthropic/llama", server, tool_choice="required", max_tokens=60),
    )
    for response in (via_openai, via_ollama, via_anthropic):
        [call] = response.choices[0].message.tool_calls
        assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
