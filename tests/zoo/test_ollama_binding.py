"""ollama_binding through the HTTP API, against the fake Ollama server of tests/zoo/ollama_server.py."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.core.config import ServerConfig
from tests.conftest import running_client
from tests.helpers import ADA_CONVERSATION, make_config, prompt, until_active, wait_until, write_instance
from tests.server import free_port, serving
from tests.zoo.key_echoes import leaks
from tests.zoo.ollama_server import Failure, FakeModel, FakeOllama, fake_embedding
from tests.zoo.ollama_server import create_app as fake_ollama

# Not shaped like a known credential, and changed by URL-encoding: the fake echoes it in every form.
API_KEY = "proxy-key/7f3a+9c2e=5b1d"
STALE_KEY = "proxy-stale/4d8e+1a6b=3c9f"
CHAT = {"model": "ollama", "messages": [{"role": "user", "content": "hi"}]}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()
FAST = {"max_retries": 0}  # the second instance: gives up at the first failure
# The third: gives up after half a second; only asked when the backend hangs for good (no answer races it).
QUICK = {"timeout": 0.5, "max_retries": 0}


def image(data: str = PNG) -> dict[str, Any]:
    return {"type": "image", "role": "input_image", "data": data, "mime_type": "image/png"}


def ollama_config(tmp_path: Path, host: str, fast: dict[str, Any] | None = None, **instance: Any) -> ServerConfig:
    config = make_config(
        tmp_path,
        bindings_map={"ollama": "ollama_binding", "ollama_fast": "ollama_binding", "ollama_quick": "ollama_binding"},
        defaults={"ttt_binding": "ollama"},
    )
    settings = {
        "type": "ollama_binding",
        "host": host,
        "default_model": "llama3.2",
        "api_key": API_KEY,
        "keep_alive": "5m",
        "num_ctx": 4096,
        "timeout": 60.0,  # as long as a loaded machine may need: no answer of the fake races it
        "max_retries": 2,
        "retry_backoff": 0.01,
        **instance,
    }
    write_instance(config, "ollama", settings)
    write_instance(config, "ollama_fast", {**settings, **FAST, **(fast or {})})
    write_instance(config, "ollama_quick", {**settings, **QUICK})
    return config


def remote_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What remote.py logged about backend answers."""
    return [record.getMessage() for record in caplog.records if record.name == "lollms_server.core.remote"]


@asynccontextmanager
async def ollama_app(tmp_path: Path, **instance: Any) -> AsyncIterator[tuple[httpx.AsyncClient, FakeOllama]]:
    """A client of our app whose instances talk to a fresh fake Ollama server."""
    fake = FakeOllama()
    async with serving(fake_ollama(fake)) as url:
        async with running_client(create_app(ollama_config(tmp_path, url, **instance))) as client:
            yield client, fake


async def generate(client: httpx.AsyncClient, *items: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.post("/api/v1/generate", json={"input_data": list(items), **body})


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(block[6:]) for block in response.text.split("\n\n") if block.startswith("data: ")]


async def test_generation_in_both_modes_with_options(tmp_path: Path) -> None:
    params = {
        "max_tokens": 50,
        "temperature": 0.2,
        "top_k": 30,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "seed": 7,
        "stop": "END",
        "min_p": 0.05,
    }
    async with ollama_app(tmp_path) as (client, fake):
        plain = await generate(client, prompt("Hello there"), parameters=params)
        streamed = await generate(client, prompt("Hello there"), parameters=params, stream=True)
        cut = await generate(client, prompt("one two three four"), parameters={"max_tokens": 2})
    assert plain.status_code == 200, plain.text
    output = plain.json()["output"][0]
    usage = {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
    assert output["data"] == "You said: Hello there" and output["thoughts"] is None
    assert output["metadata"] == {"model": "llama3.2:latest", "usage": usage, "finish_reason": "stop"}
    events = sse(streamed)
    chunks = [event for event in events if event["type"] == "chunk"]
    assert [chunk["content"] for chunk in chunks] == ["You", " said:", " Hello", " there"]  # as Ollama sent them
    assert events[-1]["type"] == "final" and events[-1]["content"][0]["data"] == "You said: Hello there"
    assert events[-1]["metadata"]["usage"] == usage and events[-1]["metadata"]["finish_reason"] == "stop"
    cut_output = cut.json()["output"][0]
    assert cut_output["data"] == "You said:" and cut_output["metadata"]["finish_reason"] == "length"
    sent = fake.received()[0]
    assert sent.body["model"] == "llama3.2:latest" and sent.body["keep_alive"] == "5m"
    assert sent.body["options"] == {
        "num_predict": 50,
        "temperature": 0.2,
        "top_k": 30,
        "top_p": 0.9,
        "repeat_penalty": 1.1,
        "repeat_last_n": 64,
        "seed": 7,
        "stop": ["END"],
        "min_p": 0.05,
        "num_ctx": 4096,
    }
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert len(fake.received()) == 3 and not fake.received("/api/generate")


async def test_multi_turn_history_reaches_ollama(tmp_path: Path) -> None:
    items = ADA_CONVERSATION
    async with ollama_app(tmp_path) as (client, fake):
        response = await generate(client, *items)
    assert response.json()["output"][0]["data"] == "You said: What is my name?"
    assert fake.received()[-1].body["messages"] == [
        {"role": "system", "content": "Be brief.\n\nAnswer in English."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


async def test_images_only_for_vision_models(tmp_path: Path) -> None:
    async with ollama_app(tmp_path) as (client, fake):
        seen = await generate(
            client, prompt("earlier"), prompt("ok", "assistant_reply"), prompt("look"), image(), model_name="llava:7b"
        )
        data_url = await generate(client, prompt("look"), image(f"data:image/png;base64,{PNG}"), model_name="llava:7b")
        text_only = await generate(client, prompt("look"), image())
        text_only_stream = await generate(client, prompt("look"), image(), stream=True)
        audio = await generate(
            client, prompt("listen"), {"type": "audio", "role": "input_audio", "data": PNG}, model_name="llava:7b"
        )
        broken = await generate(client, prompt("look"), image("not base64!"), model_name="llava:7b")
        url = await generate(client, prompt("look"), image("https://example.com/cat.png"), model_name="llava:7b")
    assert seen.status_code == 200 and seen.json()["output"][0]["data"] == "You said: look [1 image(s)]"
    messages = fake.received()[0].body["messages"]
    assert messages[-1] == {"role": "user", "content": "look", "images": [PNG]}
    assert all("images" not in message for message in messages[:-1])
    assert data_url.status_code == 200 and fake.received()[1].body["messages"][-1]["images"] == [PNG]
    for refused in (text_only, text_only_stream):
        assert refused.status_code == 400 and "llama3.2:latest" in refused.json()["detail"]
        assert "does not accept image input" in refused.json()["detail"]
    assert audio.status_code == 400 and "audio" in audio.json()["detail"]
    assert broken.status_code == 400 and "base64" in broken.json()["detail"]
    assert url.status_code == 400 and "url_inputs.allowed_domains" in url.json()["detail"]
    assert len(fake.received()) == 2


async def test_thinking_becomes_thoughts_in_both_modes(tmp_path: Path) -> None:
    async with ollama_app(tmp_path) as (client, fake):
        plain = await generate(client, prompt("why?"), model_name="deepthink-r1:8b")
        streamed = await generate(client, prompt("why?"), model_name="deepthink-r1:8b", stream=True)
        quiet = await generate(client, prompt("why?"), model_name="deepthink-r1:8b", parameters={"think": False})
        tagged = await generate(client, prompt("<think>secret plan</think>done"))
        tagged_stream = await generate(client, prompt("<think>secret plan</think>done"), stream=True)
    output = plain.json()["output"][0]
    assert output["data"] == "You said: why?" and output["thoughts"] == "Reasoning about: why?"
    events = sse(streamed)
    chunks = [event for event in events if event["type"] == "chunk"]
    assert "".join(chunk["thoughts"] or "" for chunk in chunks) == "Reasoning about: why?"
    assert "".join(chunk["content"] for chunk in chunks) == "You said: why?"
    assert events[-1]["content"][0]["thoughts"] == "Reasoning about: why?"
    assert quiet.json()["output"][0]["thoughts"] is None and fake.received()[2].body["think"] is False
    # <think> tags inside the content are left to the server's generic parser.
    assert tagged.json()["output"][0]["data"] == "You said: done"
    assert tagged.json()["output"][0]["thoughts"] == "secret plan"
    final = sse(tagged_stream)[-1]["content"][0]
    assert final["data"] == "You said: done" and final["thoughts"] == "secret plan"


async def test_model_listing_info_and_names(tmp_path: Path) -> None:
    async with ollama_app(tmp_path, num_ctx=None) as (client, fake):
        listed = (await client.get("/api/v1/list_available_models/ollama")).json()["models"]
        info = (await client.get("/api/v1/get_model_info/ollama")).json()
        vision = (await client.get("/api/v1/get_model_info/ollama", params={"model_name": "llava:7b"})).json()
        missing_info = await client.get("/api/v1/get_model_info/ollama", params={"model_name": "ghost"})
        missing = await generate(client, prompt("hi"), model_name="ghost")
        untagged = await generate(client, prompt("hi"), model_name="llava")  # means llava:latest
        fake.models.append(FakeModel("mistral:7b"))  # pulled while the server runs
        pulled = await generate(client, prompt("hi"), model_name="mistral:7b")
        bindings = await client.get("/api/v1/list_bindings")
    by_name = {model["name"]: model for model in listed}
    assert list(by_name) == ["llama3.2:latest", "llava:7b", "deepthink-r1:8b", "nomic-embed-text:latest"]
    llava = by_name["llava:7b"]
    assert llava["supports_vision"] is True and by_name["llama3.2:latest"]["supports_vision"] is False
    assert llava["context_size"] == 4096 and llava["family"] == "llama" and llava["families"] == ["llama", "clip"]
    assert llava["parameter_size"] == "7B" and llava["quantization_level"] == "Q4_0" and llava["format"] == "gguf"
    assert llava["size"] == 4_733_363_377 and llava["modified_at"].startswith("2025-05-10")
    assert llava["details"]["digest"].startswith("sha256:")
    assert info["model_name"] == "llama3.2:latest" and info["context_size"] == 131072
    assert info["supports_streaming"] is True and info["details"]["capabilities"] == ["completion"]
    assert vision["context_size"] == 4096 and vision["supports_vision"] is True
    assert missing_info.status_code == 404
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]
    assert "llava:7b" in missing.json()["detail"]  # the available models are named
    assert untagged.status_code == 404
    assert pulled.status_code == 200 and pulled.json()["output"][0]["metadata"]["model"] == "mistral:7b"
    assert API_KEY not in bindings.text and API_KEY not in json.dumps(listed)


async def test_structured_output_becomes_format(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"said": {"type": "string"}}, "required": ["said"]}
    json_schema = {"type": "json_schema", "json_schema": {"name": "echo", "schema": schema}}
    async with ollama_app(tmp_path) as (client, fake):
        shaped = await generate(client, prompt("hi"), parameters={"response_format": json_schema})
        any_json = await generate(client, prompt("hi"), parameters={"response_format": {"type": "json_object"}})
        plain = await generate(client, prompt("hi"))
    assert json.loads(shaped.json()["output"][0]["data"]) == {"said": "hi"}
    assert any_json.status_code == 200
    assert [request.body.get("format") for request in fake.received()] == [schema, "json", None]
    assert plain.json()["output"][0]["data"] == "You said: hi"


async def test_context_size_from_the_instance(tmp_path: Path) -> None:
    async with ollama_app(tmp_path) as (client, _):
        info = (await client.get("/api/v1/get_model_info/ollama")).json()
    assert info["context_size"] == 4096 and info["details"]["training_context_size"] == 131072


async def test_backend_failures_map_to_statuses(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with ollama_app(tmp_path) as (client, fake):
        fake.failure = Failure(status=401)
        refused = await generate(client, prompt("hi"))
        refused_stream = await generate(client, prompt("hi"), stream=True)
        assert len(fake.received()) == 2  # credentials are not retried

        fake.failure = Failure(status=404, message="model 'llama3.2' not found, try pulling it first")
        unknown = await generate(client, prompt("hi"))

        fake.failure = Failure(status=429, retry_after="7")
        limited = await generate(client, prompt("hi"), binding_name="ollama_fast")

        fake.failure = Failure(status=429, retry_after="1", times=1)
        before = len(fake.received())
        waited = await generate(client, prompt("hi"))
        first, second = fake.received()[before:]

        fake.failure = Failure(status=500)
        before = len(fake.received())
        failed = await generate(client, prompt("hi"))
        attempts = len(fake.received()) - before

        await until_active(client, "ollama_quick")  # its half-second health checks may need a few tries
        fake.failure = Failure(hang=True)
        slow = await generate(client, prompt("hi"), binding_name="ollama_quick")
        await wait_until(lambda: fake.hangs_left_by_client == 1)  # it gave up and left, long before HANG_LIMIT

        fake.failure = None
        recovered = await generate(client, prompt("hi"))
    assert refused.status_code == 502 and refused.json()["code"] == "backend_unauthorized"
    assert refused_stream.status_code == 502  # refused before any event: the status survives streaming
    for response in (refused, refused_stream):  # the backend's words (echoing the key) are for the log only
        assert "unauthorized: key" not in response.text and leaks(response.text, API_KEY) == []
    logged = remote_warnings(caplog)
    assert any("Binding 'ollama'" in line and "unauthorized: key ***" in line for line in logged)
    assert leaks(caplog.text, API_KEY) == []
    # A model the backend does not know: named from our own list of its models, not from its message.
    assert unknown.status_code == 404 and "try pulling" not in unknown.text
    listed = "deepthink-r1:8b, llama3.2:latest, llava:7b, nomic-embed-text:latest"
    assert unknown.json()["detail"].endswith(f"(models it lists: {listed})")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert waited.status_code == 200 and second.at - first.at >= 0.9  # Retry-After was honoured
    assert failed.status_code == 502 and failed.json()["code"] == "backend_error"
    assert attempts == 3  # max_retries + 1
    assert slow.status_code == 504 and slow.json()["code"] == "backend_timeout"
    assert recovered.status_code == 200


async def test_unreachable_backend_and_recovery(tmp_path: Path) -> None:
    port = free_port()  # the backend comes and goes on this port
    fake = FakeOllama()
    async with running_client(create_app(ollama_config(tmp_path, f"http://127.0.0.1:{port}"))) as client:
        down = await generate(client, prompt("hi"))
        instances = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
        async with serving(fake_ollama(fake), port=port):
            deadline = asyncio.get_running_loop().time() + 120  # re-checked every second; generous when loaded
            while (up := await generate(client, prompt("hi"))).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, up.text
                await asyncio.sleep(0.1)
        gone = await generate(client, prompt("hi"))
        gone_stream = await generate(client, prompt("hi"), stream=True)
        async with serving(fake_ollama(fake), port=port):
            back = await generate(client, prompt("hi"))
    assert down.status_code == 503 and instances["ollama"]["status"] == "unavailable"
    assert "unreachable" in instances["ollama"]["error"]
    assert up.status_code == 200
    assert gone.status_code == 503 and gone.json()["code"] == "backend_unreachable"
    assert gone_stream.status_code == 503 and "unreachable" in gone_stream.json()["detail"]
    assert back.status_code == 200 and back.json()["output"][0]["data"] == "You said: hi"


async def test_no_retry_after_the_first_streamed_byte(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with ollama_app(tmp_path) as (client, fake):
        fake.break_stream_after = 2
        streamed = await generate(client, prompt("one two three"), stream=True)
        assert len(fake.received()) == 1
        plain = await generate(client, prompt("one two three"))
    events = sse(streamed)
    assert streamed.status_code == 200
    assert [event["type"] for event in events] == ["chunk", "chunk", "error"]
    assert events[-1]["content"] == "binding 'ollama': the backend failed while generating"
    assert any("llama runner process has terminated" in line for line in remote_warnings(caplog))  # its words
    assert plain.status_code == 502 and len(fake.received()) == 2


async def test_embeddings_through_the_openai_compatible_api(tmp_path: Path) -> None:
    async with ollama_app(tmp_path) as (client, fake):
        response = await client.post(
            "/v1/embeddings",
            json={"model": "ollama/nomic-embed-text", "input": ["first text", "second text"]},
        )
        refused = await client.post("/v1/embeddings", json={"model": "ollama/llama3.2", "input": "x"})
    body = response.json()
    assert response.status_code == 200, body
    assert [item["embedding"] for item in body["data"]] == [fake_embedding("first text"), fake_embedding("second text")]
    assert body["model"] == "ollama/nomic-embed-text" and body["usage"]["prompt_tokens"] == 4
    assert fake.received("/api/embed")[0].body["model"] == "nomic-embed-text:latest"
    assert refused.status_code == 400 and "does not support embeddings" in refused.json()["error"]["message"]


async def test_refused_credentials_are_502_in_every_api_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOllama(api_key=API_KEY)  # behind a proxy that checks keys
    async with serving(fake_ollama(fake)) as url:
        config = ollama_config(tmp_path, url, fast={"api_key": STALE_KEY})
        async with running_client(create_app(config)) as client:
            listed = await client.get("/api/v1/list_bindings")
            fake.api_key = "rotated-key-0000"  # the proxy revokes the instance's key while the server runs
            ours = await generate(client, prompt("hi"))
            openai_shape = await client.post("/v1/chat/completions", json=CHAT)
            ollama_shape = await client.post("/api/chat", json={**CHAT, "stream": False})
            ollama_stream = await client.post("/api/chat", json=CHAT)  # Ollama streams by default
    # A key refused at start-up: the instance is unavailable with a reason that repeats none of it.
    stale = listed.json()["binding_instances"]["ollama_fast"]
    assert stale["status"] == "unavailable" and "credentials (HTTP 401)" in stale["error"]
    assert "unauthorized: key" not in listed.text and leaks(listed.text, STALE_KEY) == []
    # Refused at request time: 502, so that clients do not take it for a problem with their own key.
    assert ours.status_code == 502 and ours.json()["code"] == "backend_unauthorized" and ours.json()["request_id"]
    error = openai_shape.json()["error"]
    assert openai_shape.status_code == 502 and error["code"] == "backend_unauthorized"
    for answer in (ollama_shape, ollama_stream):
        assert answer.status_code == 502 and "refused the instance's credentials" in answer.json()["error"]
    for answer in (ours, openai_shape, ollama_shape, ollama_stream):
        assert "unauthorized: key" not in answer.text and leaks(answer.text, API_KEY) == []
    assert leaks(caplog.text, API_KEY) == [] and leaks(caplog.text, STALE_KEY) == []


async def test_html_or_event_stream_answers_are_502_naming_them(tmp_path: Path) -> None:
    async with ollama_app(tmp_path) as (client, fake):
        fake.failure = Failure(answer="html")
        html = await generate(client, prompt("hi"))
        html_calls = len(fake.received())
        html_stream = await generate(client, prompt("hi"), stream=True)
        html_api = await client.post("/api/chat", json={**CHAT, "stream": False})
        fake.failure = Failure(answer="sse")
        sse = await generate(client, prompt("hi"))
        fake.failure = Failure(answer="html", paths=("/api/tags",))
        listing = await client.get("/api/v1/list_available_models/ollama")
    expected = "binding 'ollama': the backend answered text/html, not JSON: is host right?"
    assert html.status_code == 502 and html.json() | {"request_id": None} == {
        "detail": expected,
        "code": "backend_error",
        "request_id": None,
    }
    assert html_calls == 1  # the same page would come back: not retried
    assert html_stream.status_code == 502 and html_stream.json()["detail"] == expected
    assert html_api.status_code == 502 and html_api.json()["error"] == expected
    assert sse.status_code == 502 and "answered text/event-stream, not JSON" in sse.json()["detail"]
    assert listing.status_code == 502 and "answered text/html, not JSON" in listing.json()["detail"]
    # Checked at start-up: the instance is unavailable and says why.
    fake = FakeOllama(failure=Failure(answer="html", paths=("/api/tags",)))
    async with serving(fake_ollama(fake)) as url:
        async with running_client(create_app(ollama_config(tmp_path / "wrong", url))) as client:
            instances = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
    assert instances["ollama"]["status"] == "unavailable"
    assert instances["ollama"]["error"] == expected
