"""Fields and options of the Ollama API that would change the answer are refused with 400 in Ollama's shape;
options that configure model loading are accepted and logged as left to the binding instance; fields Ollama
does not define are logged as ignored. Proven with the official ollama client over a scripted binding."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, lifespan, scripted_and_e5_config, scripted_calls

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[ollama.AsyncClient]:
    config = scripted_and_e5_config(tmp_path)
    async with lifespan(create_app(config)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        auth = {"Authorization": f"Bearer {TEST_API_KEY}"}
        async with ollama.AsyncClient(host="http://test", headers=auth, transport=transport) as client:
            yield client


async def refused(call: Awaitable[Any]) -> ollama.ResponseError:
    with pytest.raises(ollama.ResponseError) as caught:
        await call
    assert caught.value.status_code == 400
    return caught.value


async def test_fields_that_change_the_answer_are_refused(client: ollama.AsyncClient) -> None:
    generate, chat = client.generate, client.chat
    cases: list[tuple[Callable[[], Awaitable[Any]], str]] = [
        (lambda: generate(model="scripted", prompt="hi", template="{{ .Prompt }}"), "template is not supported"),
        (lambda: generate(model="scripted", prompt="hi", context=[1, 2, 3]), "context (the state an earlier"),
        (lambda: generate(model="scripted", prompt="def f(", suffix="return 1"), "suffix (fill-in-the-middle)"),
        (lambda: generate(model="scripted", prompt="hi", logprobs=True), "logprobs is not supported"),
        (lambda: chat(model="scripted", messages=MESSAGES, logprobs=True, top_logprobs=2), "logprobs is not supported"),
        (lambda: chat(model="scripted", messages=MESSAGES, top_logprobs=2), "top_logprobs is not supported"),
        (
            lambda: chat(model="scripted", messages=MESSAGES, options={"penalize_newline": True}),
            "options.penalize_newline is not supported",
        ),
    ]
    for call, message in cases:
        assert message in (await refused(call())).error


async def test_tool_calls_in_the_history_reach_the_binding_with_ids(client: ollama.AsyncClient) -> None:
    history = [
        *MESSAGES,
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "42", "tool_name": "f"},
    ]
    await client.chat(model="scripted", messages=history)
    messages = scripted_calls()[-1]["request_info"]["messages"]
    [call] = messages[1]["tool_calls"]
    assert call["function"] == {"name": "f", "arguments": '{"x": 1}'} and call["id"].startswith("call_")
    assert messages[2] == {"role": "tool", "content": "42", "tool_call_id": call["id"], "name": "f"}


async def test_loading_options_are_left_to_the_instance_and_unknown_fields_logged(
    client: ollama.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="lollms_server.api.wire_fields")
    options = {"num_ctx": 8192, "num_gpu": 99, "num_thread": 4, "temperature": 0.5, "penalize_newline": False}
    answer = await client.chat(
        model="scripted", messages=MESSAGES, options={**options, "top_a": 0.2}, keep_alive="5m", logprobs=False
    )
    assert answer.message.content == "Hello world"
    assert scripted_calls()[-1]["params"]["temperature"] == 0.5
    lines = {record.levelno: record.getMessage() for record in caplog.records if "ignored" in record.getMessage()}
    assert set(lines) == {logging.INFO, logging.DEBUG}, lines
    assert "ignored options.top_a (not part of the Ollama API" in lines[logging.INFO]
    assert (
        "ignored options.num_ctx, options.num_gpu, options.num_thread (they configure how a model is loaded"
        in (lines[logging.DEBUG])
    )


async def test_embedding_dimensions_other_than_the_models_are_refused(client: ollama.AsyncClient) -> None:
    native = await client.embed(model="e5", input="hello", dimensions=384)
    assert len(native.embeddings[0]) == 384
    error = (await refused(client.embed(model="e5", input="hello", dimensions=128))).error
    assert "dimensions=128: e5/multilingual-e5-small gives 384-dimensional vectors only" in error


async def test_tool_calls_reach_the_sdk_streamed_and_not(client: ollama.AsyncClient) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    answer = await client.chat(model="scripted", messages=MESSAGES, tools=[tool])
    lines = [line async for line in await client.chat(model="scripted", messages=MESSAGES, tools=[tool], stream=True)]
    streamed = [call for line in lines for call in line.message.tool_calls or []]
    for calls in (answer.message.tool_calls or [], streamed):
        [call] = calls
        assert call.function.name == "get_weather" and call.function.arguments == {"city": "Paris"}
    assert answer.done_reason == "stop" and answer.message.content == "Hello world"
    assert scripted_calls()[-1]["params"]["tools"] == [tool]
