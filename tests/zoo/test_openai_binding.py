"""openai_binding against a REAL OpenAI-compatible server (llama-cpp-python's, with the embedded model)
and, for what that server cannot show (images, reasoning, 429/5xx, cut streams), a loopback fake."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, write_instance
from tests.server import free_port, serving
from tests.zoo.openai_fake_server import FakeOpenAI
from tests.zoo.test_llamacpp_binding import embedded_model

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python's server extra")

SERVER_KEY = "sk-local-test-0123456789"
FRANCE = {"type": "text", "role": "user_prompt", "data": "What is the capital of France?"}
SETTINGS = {"temperature": 0.2, "repeat_penalty": 1.2, "max_tokens": 40, "seed": 42}


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(embedded_model()),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--api_key",
            SERVER_KEY,
            "--model_alias",
            "smollm2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(150):
            try:
                httpx.get(f"{base}/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def openai_config(tmp_path: Path, **instance: Any):  # type: ignore[no-untyped-def]
    config = make_config(tmp_path, bindings_map={"oai": "openai_binding"}, defaults={"ttt_binding": "oai"})
    write_instance(config, "oai", {"type": "openai_binding", "max_retries": 1, "retry_backoff": 0.01, **instance})
    return config


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(block[6:]) for block in text.split("\n\n") if block.startswith("data: ")]


async def test_generation_against_the_real_server(tmp_path: Path, llama_server: str) -> None:
    config = openai_config(tmp_path, base_url=llama_server, api_key=SERVER_KEY, default_model="smollm2")
    async with running_client(create_app(config)) as client:
        plain = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "parameters": SETTINGS})
        streamed = await client.post(
            "/api/v1/generate", json={"input_data": [FRANCE], "parameters": SETTINGS, "stream": True}
        )
        models = (await client.get("/api/v1/list_available_models/oai")).json()["models"]
        info = (await client.get("/api/v1/get_model_info/oai")).json()
        unknown = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "model_name": "gpt-9"})
    output = plain.json()["output"][0]
    assert plain.status_code == 200 and "Paris" in output["data"]
    assert output["metadata"]["usage"]["prompt_tokens"] > 10 and output["metadata"]["model"] == "smollm2"
    events = events_of(streamed.text)
    chunks = [event for event in events if event["type"] == "chunk"]
    assert len(chunks) > 3 and "".join(c["content"] for c in chunks) == events[-1]["content"][0]["data"]
    assert "Paris" in events[-1]["content"][0]["data"]
    assert [model["name"] for model in models] == ["smollm2"]
    assert info["context_size"] == 4096 and info["details"]["context_size_source"] == "configured"
    assert unknown.status_code == 404 and "gpt-9" in unknown.json()["detail"]


async def test_multi_turn_history_reaches_the_real_server(tmp_path: Path, llama_server: str) -> None:
    config = openai_config(tmp_path, base_url=llama_server, api_key=SERVER_KEY, default_model="smollm2")
    system = {"type": "text", "role": "system_context", "data": "You are a geography teacher."}
    earlier = [
        {"type": "text", "role": "user_prompt", "data": "I am planning a trip to Europe."},
        {"type": "text", "role": "assistant_reply", "data": "Wonderful! Where would you like to go?"},
    ]
    params = {**SETTINGS, "max_tokens": 1}
    async with running_client(create_app(config)) as client:
        short = await client.post("/api/v1/generate", json={"input_data": [system, FRANCE], "parameters": params})
        long = await client.post(
            "/api/v1/generate", json={"input_data": [system, *earlier, FRANCE], "parameters": params}
        )
    grown = (
        long.json()["output"][0]["metadata"]["usage"]["prompt_tokens"]
        - short.json()["output"][0]["metadata"]["usage"]["prompt_tokens"]
    )
    assert 18 <= grown <= 40  # both earlier turns (about 18 tokens of text) plus their role markers


async def test_wrong_key_is_401_without_leaking_it(tmp_path: Path, llama_server: str) -> None:
    wrong = "sk-wrong-key-abcdefghijklmnop"
    config = openai_config(tmp_path, base_url=llama_server, api_key=wrong, default_model="smollm2")
    async with running_client(create_app(config)) as client:
        listed = (await client.get("/api/v1/list_bindings")).json()
        response = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
    # Refused at start-up: unavailable with the reason (a 401 at request time is tested with the fake).
    assert listed["binding_instances"]["oai"]["status"] == "unavailable"
    assert "HTTP 401" in listed["binding_instances"]["oai"]["error"]
    assert response.status_code == 503 and "HTTP 401" in response.json()["detail"]
    assert wrong not in response.text and wrong not in json.dumps(listed)


async def test_images_reasoning_and_think_tags(tmp_path: Path) -> None:
    fake = FakeOpenAI()
    image = {"type": "image", "role": "input_image", "data": "aGVsbG8=", "mime_type": "image/jpeg"}
    async with serving(fake.app()) as url:
        config = openai_config(tmp_path, base_url=f"{url}/v1", api_key="k", default_model="fake-vision-vl")
        async with running_client(create_app(config)) as client:
            plain = await client.post("/api/v1/generate", json={"input_data": [FRANCE, image]})
            streamed = await client.post("/api/v1/generate", json={"input_data": [FRANCE, image], "stream": True})
            refused = await client.post(
                "/api/v1/generate", json={"input_data": [FRANCE, image], "model_name": "fake-text"}
            )
            info = (await client.get("/api/v1/get_model_info/oai")).json()
            fake.reasoning, fake.reply = "step by step", "Plain answer."
            reasoned = (await client.post("/api/v1/generate", json={"input_data": [FRANCE]})).json()["output"][0]
            reasoned_stream = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "stream": True})
    content = fake.requests[0]["messages"][-1]["content"]
    assert content[1] == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,aGVsbG8="}}
    output = plain.json()["output"][0]
    assert output["data"] == "Hello from the fake." and output["thoughts"] == "considering"
    events = events_of(streamed.text)
    assert "".join(e["content"] for e in events if e["type"] == "chunk") == "Hello from the fake."
    assert "".join(e["thoughts"] or "" for e in events if e["type"] == "chunk") == "considering"
    assert (
        events[-1]["metadata"]["finish_reason"] == "length" and events[-1]["metadata"]["usage"]["prompt_tokens"] == 11
    )
    assert refused.status_code == 400 and "fake-text" in refused.json()["detail"]
    assert info["context_size"] == 32768 and info["supports_vision"] is True
    assert reasoned["data"] == "Plain answer." and reasoned["thoughts"] == "step by step"
    assert events_of(reasoned_stream.text)[-1]["content"][0]["thoughts"] == "step by step"


@pytest.mark.parametrize(("status", "expected"), [(429, 429), (500, 502), (503, 502), (401, 401), (403, 401)])
async def test_backend_failures_map_to_clear_statuses(tmp_path: Path, status: int, expected: int) -> None:
    fake = FakeOpenAI(fail_status=status)
    key = "sk-secret-never-shown-123456"
    async with serving(fake.app()) as url:
        config = openai_config(tmp_path, base_url=f"{url}/v1", api_key=key, default_model="fake-text")
        async with running_client(create_app(config)) as client:
            response = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            streamed = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "stream": True})
            health = (await client.get("/health")).json()
    assert response.status_code == expected and health["status"] == "ok"
    if status != 429:  # (its Retry-After of 7 s outlasts the wait for a first event: then it is an error event)
        assert streamed.status_code == expected  # a failure before the first event keeps its status when streaming
    assert key not in response.text
    retried = status in (429, 500, 503)
    assert len(fake.requests) == (4 if retried else 2)  # max_retries: 1, for each of the two requests
    if status == 429:
        assert response.headers["Retry-After"] == "7"


async def test_timeout_unreachable_and_recovery(tmp_path: Path) -> None:
    fake = FakeOpenAI(delay=2.0)
    port = free_port()
    config = openai_config(
        tmp_path, base_url=f"http://127.0.0.1:{port}/v1", api_key="k", default_model="fake-text", timeout=0.5
    )
    app = create_app(config)
    async with running_client(app) as client:
        down = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "binding_name": "oai"})
        assert down.status_code == 503  # unreachable at start-up: unavailable, with the reason
        async with serving_on(fake, port):
            app.state.binding_manager.instances["oai"].last_check = 0.0  # as if the re-check interval had passed
            slow = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            fake.delay = 0.0
            back = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
    assert slow.status_code == 504 and slow.json()["code"] == "backend_timeout"
    assert back.status_code == 200 and back.json()["output"][0]["data"] == "Hello from the fake."


async def test_no_retry_after_the_first_streamed_byte(tmp_path: Path) -> None:
    fake = FakeOpenAI(cut_stream=True, reply="Hello there, my friend.")
    async with serving(fake.app()) as url:
        config = openai_config(tmp_path, base_url=f"{url}/v1", api_key="k", default_model="fake-text", max_retries=3)
        async with running_client(create_app(config)) as client:
            response = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "stream": True})
    events = events_of(response.text)
    assert [event["type"] for event in events][:1] == ["chunk"] and events[-1]["type"] in ("error", "final")
    assert any(event["type"] == "error" for event in events)
    assert len(fake.requests) == 1


def serving_on(fake: FakeOpenAI, port: int):  # type: ignore[no-untyped-def]
    """The fake served on a chosen port (to bring a backend up where an instance expects it)."""
    return serving(fake.app(), port=port)
