"""The Anthropic Messages API with the official anthropic SDK, against the real server and the embedded model:
messages, streaming, tools (any, a named tool, a full round trip), count_tokens, and errors in Anthropic's shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp")

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    config = make_config(tmp_path, bindings_map={"llama": "llamacpp_binding"}, defaults={"ttt_binding": "llama"})
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2, "seed": 42})
    async with serving(create_app(config)) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=server, api_key=TEST_API_KEY, max_retries=0) as sdk:
        yield sdk


async def test_messages_and_their_stream(client: anthropic.AsyncAnthropic) -> None:
    question: list[Any] = [{"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}]
    message = await client.messages.create(model="llama", max_tokens=30, system="Answer briefly.", messages=question)
    async with client.messages.stream(
        model="llama", max_tokens=30, system="Answer briefly.", messages=question
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    [block] = message.content
    assert block.type == "text" and block.text
    assert message.role == "assistant" and message.stop_reason in ("end_turn", "max_tokens")
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert len(pieces) > 1 and "".join(pieces) == final.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens > 0 and final.stop_reason in ("end_turn", "max_tokens")
    short = await client.messages.create(model="llama", max_tokens=2, messages=question)
    assert short.stop_reason == "max_tokens"


async def test_tools_any_named_and_a_round_trip(client: anthropic.AsyncAnthropic) -> None:
    called = await client.messages.create(
        model="llama", max_tokens=80, tools=[WEATHER], tool_choice={"type": "any"}, messages=ASK
    )
    [use] = [block for block in called.content if block.type == "tool_use"]
    assert called.stop_reason == "tool_use" and use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER["input_schema"])
    async with client.messages.stream(
        model="llama", max_tokens=80, tools=[WEATHER], tool_choice={"type": "tool", "name": "get_weather"}, messages=ASK
    ) as stream:
        streamed = await stream.get_final_message()
    [streamed_use] = [block for block in streamed.content if block.type == "tool_use"]
    jsonschema.validate(streamed_use.input, WEATHER["input_schema"])
    history: list[Any] = [
        *ASK,
        {"role": "assistant", "content": called.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees"}]},
    ]
    answer = await client.messages.create(
        model="llama", max_tokens=30, tools=[WEATHER], tool_choice={"type": "none"}, messages=history
    )
    assert answer.content[0].type == "text" and answer.content[0].text and answer.stop_reason != "tool_use"


async def test_count_tokens_and_errors_in_anthropics_shape(server: str, client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model="llama", messages=ASK)
    with_tools = await client.messages.count_tokens(model="llama", messages=ASK, tools=[WEATHER])
    assert 0 < counted.input_tokens < with_tools.input_tokens  # the tools are described to the model
    with pytest.raises(anthropic.NotFoundError) as missing:
        await client.messages.create(model="nowhere/model", max_tokens=5, messages=ASK)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as server_tool:
        await client.messages.create(
            model="llama", max_tokens=5, messages=ASK, tools=[{"type": "web_search_20250305", "name": "web_search"}]
        )
    assert "server tools" in server_tool.value.message
    async with anthropic.AsyncAnthropic(base_url=server, api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await wrong.messages.create(model="llama", max_tokens=5, messages=ASK)
    assert refused.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
