"""Fields of the OpenAI API that would change the answer are refused with 400, never dropped; fields that do not
are accepted; fields OpenAI does not define are logged as ignored. Proven with the official openai SDK over a
scripted binding (the model does not matter here)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, lifespan, scripted_and_e5_config, scripted_calls

MESSAGES = [{"role": "user", "content": "hi"}]
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    config = scripted_and_e5_config(tmp_path)
    async with lifespan(create_app(config)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport) as http:
            yield openai.AsyncOpenAI(base_url="http://test/v1", api_key=TEST_API_KEY, http_client=http, max_retries=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": 2}, "only n=1 is supported"),
        ({"logprobs": True}, "logprobs is not supported by this server yet"),
        ({"logprobs": True, "top_logprobs": 3}, "logprobs is not supported by this server yet"),
        ({"top_logprobs": 2}, "top_logprobs is not supported by this server yet"),
        ({"logit_bias": {"50256": -100}}, "logit_bias is not supported by this server yet"),
        ({"functions": [TOOL["function"]]}, "send tools (and tool_choice) instead"),
        ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "audio output"),
        ({"modalities": ["text", "image"]}, "only text output is supported"),
        ({"verbosity": "low"}, "verbosity is not supported"),
        ({"web_search_options": {}}, "web search is not supported"),
    ],
)
async def test_chat_fields_that_change_the_answer_are_refused(
    client: openai.AsyncOpenAI, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.chat.completions.create(model="scripted", messages=MESSAGES, **fields)  # type: ignore[call-overload]
    assert refused.value.status_code == 400
    assert message in refused.value.message
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_tools_and_tool_calls_in_the_history_reach_the_binding(client: openai.AsyncOpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    result = {"role": "tool", "tool_call_id": "call_1", "content": "42"}
    history = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [call]}, result]
    answered = await client.chat.completions.create(model="scripted", messages=history, tools=[TOOL])  # type: ignore[arg-type,list-item]
    seen = scripted_calls()[-1]["request_info"]["messages"]
    called = await client.chat.completions.create(model="scripted", messages=MESSAGES, tools=[TOOL])  # type: ignore[list-item]
    assert seen[1] == {"role": "assistant", "content": "", "tool_calls": [call]}
    assert seen[2] == {"role": "tool", "content": "42", "tool_call_id": "call_1"}
    assert answered.choices[0].message.content == "Hello world" and answered.choices[0].finish_reason == "stop"
    [made] = called.choices[0].message.tool_calls or []
    assert made.function.name == TOOL["function"]["name"] and called.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"n": 3}, "only n=1 is supported"),
        ({"best_of": 2}, "only best_of=1 is supported"),
        ({"echo": True}, "echo is not supported by this server yet"),
        ({"suffix": "}"}, "suffix (fill-in-the-middle) is not supported"),
        ({"logprobs": 2}, "logprobs is not supported by this server yet"),
        ({"logprobs": 0}, "logprobs is not supported by this server yet"),
        ({"logit_bias": {"1": 5}}, "logit_bias is not supported by this server yet"),
    ],
)
async def test_completion_fields_that_change_the_answer_are_refused(
    client: openai.AsyncOpenAI, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.completions.create(model="scripted", prompt="Once", **fields)
    assert message in refused.value.message


async def test_harmless_fields_are_accepted_and_unknown_ones_logged_once(
    client: openai.AsyncOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lollms_server.api.wire_fields")
    messages = [{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}]
    answer = await client.chat.completions.create(
        model="scripted",
        messages=messages,  # type: ignore[arg-type]
        n=1,
        logprobs=False,
        user="someone",
        metadata={"purpose": "test"},
        store=False,
        service_tier="auto",
        parallel_tool_calls=False,
        tool_choice="none",
        prompt_cache_key="k",
        safety_identifier="s",
        modalities=["text"],
        extra_body={"repetition_penalty": 1.1, "chat_template_kwargs": {"enable_thinking": False}},
    )
    completion = await client.completions.create(
        model="scripted", prompt="Once", n=1, best_of=1, echo=False, suffix="", user="someone"
    )
    assert answer.choices[0].message.content == "Hello world" and completion.choices[0].text == "Hello world"
    ignored = [record.getMessage() for record in caplog.records if "ignored" in record.getMessage()]
    # One line for the chat request, naming only what OpenAI does not define; none for the completion.
    assert len(ignored) == 1, ignored
    assert "ignored chat_template_kwargs, messages[].cache_control, repetition_penalty (" in ignored[0]
    assert answer.id.removeprefix("chatcmpl-") in ignored[0]


async def test_embedding_dimensions_other_than_the_models_are_refused(client: openai.AsyncOpenAI) -> None:
    native = await client.embeddings.create(model="e5", input="hello", dimensions=384, encoding_format="float")
    assert len(native.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError, match="dimensions=256: e5/multilingual-e5-small gives 384-dimensional"):
        await client.embeddings.create(model="e5", input="hello", dimensions=256)


async def test_reasoning_effort_reaches_the_binding_as_think(client: openai.AsyncOpenAI) -> None:
    """lollms_client sends reasoning_effort "none" on every request: it is Ollama's think, not dropped."""
    await client.chat.completions.create(model="scripted", messages=MESSAGES, reasoning_effort="none")
    assert scripted_calls()[-1]["params"]["think"] is False
    await client.chat.completions.create(model="scripted", messages=MESSAGES, reasoning_effort="high")
    assert scripted_calls()[-1]["params"]["think"] == "high"
