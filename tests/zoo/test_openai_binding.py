"""openai_binding against a REAL OpenAI-compatible server (llama-cpp-python's, with the embedded model)
and, for what that server cannot show (images, reasoning, 429/5xx, cut streams), a loopback fake."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from lollms_server.core.binding_manager import InstanceState
from tests.conftest import running_client
from tests.helpers import make_config, wait_until, write_instance
from tests.server import free_port, serving
from tests.zoo.key_echoes import leaks
from tests.zoo.openai_fake_server import FakeOpenAI
from tests.zoo.test_llamacpp_binding import embedded_model

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python's server extra")

SERVER_KEY = "sk-local-test-0123456789"
# Keys with characters that URL-encoding changes: the fake echoes them in every form.
KEY = "sk-Zq7/Xw+Rt=Hk9Lm2Vb4Np6"
STALE_KEY = "sk-Stale/Qp3+Jd8=Wx5Yc1Tf7"
CHAT = {"model": "oai", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
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
        deadline = time.monotonic() + 300  # a loaded 2-core machine may take long to start it
        while True:
            assert process.poll() is None, f"llama_cpp.server exited with {process.returncode}"
            try:
                httpx.get(f"{base}/models", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "llama_cpp.server did not answer within 300 s"
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def openai_config(tmp_path: Path, others: dict[str, dict[str, Any]] | None = None, **instance: Any):  # type: ignore[no-untyped-def]
    """A config with the instance "oai" (fast retries) and the ``others``."""
    instances = {"oai": instance, **(others or {})}
    config = make_config(
        tmp_path, bindings_map={name: "openai_binding" for name in instances}, defaults={"ttt_binding": "oai"}
    )
    for name, values in instances.items():
        write_instance(config, name, {"type": "openai_binding", "max_retries": 1, "retry_backoff": 0.01, **values})
    return config


def remote_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What remote.py logged about backend answers."""
    return [record.getMessage() for record in caplog.records if record.name == "lollms_server.core.remote"]


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


async def test_wrong_key_makes_the_instance_unavailable_without_leaking_it(tmp_path: Path, llama_server: str) -> None:
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


@pytest.mark.parametrize(
    ("status", "expected", "code"),
    [
        (429, 429, "backend_rate_limited"),
        (500, 502, "backend_error"),
        (503, 502, "backend_error"),
        (401, 502, "backend_unauthorized"),
        (403, 502, "backend_unauthorized"),
        (400, 400, "bad_request"),
        (404, 404, "not_found"),
    ],
)
async def test_backend_failures_map_to_clear_statuses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int, expected: int, code: str
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOpenAI(fail_status=status)
    async with serving(fake.app()) as url:
        config = openai_config(tmp_path, base_url=f"{url}/v1", api_key=KEY, default_model="fake-text")
        async with running_client(create_app(config)) as client:
            response = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            streamed = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "stream": True})
            health = (await client.get("/health")).json()
    assert response.status_code == expected and response.json()["code"] == code and health["status"] == "ok"
    if status != 429:  # (its Retry-After of 7 s outlasts the wait for a first event: then it is an error event)
        assert streamed.status_code == expected  # a failure before the first event keeps its status when streaming
    # The backend's words (which echo the key in every form) stay out of the answer, masked in the log.
    for answer in (response, streamed):
        assert "fake failure" not in answer.text and leaks(answer.text, KEY) == []
    logged = remote_warnings(caplog)
    assert logged and all(f"HTTP {status}" in line and "fake failure" in line and "***" in line for line in logged)
    assert leaks(caplog.text, KEY) == []
    retried = status in (429, 500, 503)
    assert len(fake.requests) == (4 if retried else 2)  # max_retries: 1, for each of the two requests
    if status == 429:
        assert response.headers["Retry-After"] == "7"
    if status == 404:  # still useful: our own list of the backend's models
        assert response.json()["detail"].endswith("(models it lists: fake-text, fake-vision-vl)")


async def test_refused_credentials_are_502_in_every_api_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeOpenAI(api_key=KEY)
    async with serving(fake.app()) as url:
        stale = {"base_url": f"{url}/v1", "api_key": STALE_KEY, "default_model": "fake-text"}
        config = openai_config(tmp_path, {"stale": stale}, base_url=f"{url}/v1", api_key=KEY, default_model="fake-text")
        async with running_client(create_app(config)) as client:
            listed = await client.get("/api/v1/list_bindings")
            fake.api_key = "sk-rotated-0000"  # the backend revokes the instance's key while the server runs
            ours = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            openai_shape = await client.post("/v1/chat/completions", json=CHAT)
            openai_stream = await client.post("/v1/chat/completions", json={**CHAT, "stream": True})
            ollama_shape = await client.post("/api/chat", json={**CHAT, "stream": False})
    # A key refused at start-up: the instance is unavailable with a reason that repeats none of it.
    stale_status = listed.json()["binding_instances"]["stale"]
    assert stale_status["status"] == "unavailable" and "credentials (HTTP 401)" in stale_status["error"]
    assert "fake failure" not in listed.text and leaks(listed.text, STALE_KEY) == []
    # Refused at request time: 502, so that clients do not take it for a problem with their own key.
    assert ours.status_code == 502 and ours.json()["code"] == "backend_unauthorized"
    assert "refused the instance's credentials (HTTP 401)" in ours.json()["detail"] and ours.json()["request_id"]
    for answer in (openai_shape, openai_stream):
        error = answer.json()["error"]
        assert answer.status_code == 502 and error["code"] == "backend_unauthorized" and error["type"] == "server_error"
    assert ollama_shape.status_code == 502 and "credentials (HTTP 401)" in ollama_shape.json()["error"]
    for answer in (ours, openai_shape, openai_stream, ollama_shape):
        assert "fake failure" not in answer.text and leaks(answer.text, KEY) == []
    assert any("Binding 'oai'" in line and "fake failure 401" in line for line in remote_warnings(caplog))
    assert leaks(caplog.text, KEY) == [] and leaks(caplog.text, STALE_KEY) == []


async def test_html_or_event_stream_answers_are_502_naming_them(tmp_path: Path) -> None:
    fake = FakeOpenAI()
    async with serving(fake.app()) as url:
        site = {"base_url": f"{url}/site", "api_key": KEY, "default_model": "fake-text"}  # a web server's pages
        config = openai_config(tmp_path, {"site": site}, base_url=f"{url}/v1", api_key="k", default_model="fake-text")
        async with running_client(create_app(config)) as client:
            listed = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
            fake.wrong_answer = "html"
            html = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            html_calls = len(fake.requests)
            html_stream = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "stream": True})
            html_openai = await client.post("/v1/chat/completions", json=CHAT)
            fake.wrong_answer = "sse"
            sse = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            sse_openai = await client.post("/v1/chat/completions", json=CHAT)
    assert html.status_code == 502 and html.json()["code"] == "backend_error"
    assert html.json()["detail"] == "binding 'oai': the backend answered text/html, not JSON: is base_url right?"
    assert html_calls == 1  # the same page would come back: not retried
    assert html_stream.status_code == 502
    assert "the backend answered text/html, not an event stream" in html_stream.json()["detail"]
    assert html_openai.status_code == 502 and "text/html, not JSON" in html_openai.json()["error"]["message"]
    for answer in (sse, sse_openai):
        assert answer.status_code == 502 and "the backend answered text/event-stream, not JSON" in answer.text
    assert listed["site"]["status"] == "unavailable"
    assert listed["site"]["error"] == "binding 'site': the backend answered text/html, not JSON: is base_url right?"


async def test_timeout_unreachable_and_recovery(tmp_path: Path) -> None:
    fake = FakeOpenAI()
    port = free_port()
    backend = {"base_url": f"http://127.0.0.1:{port}/v1", "api_key": "k", "default_model": "fake-text"}
    # "oai" waits as long as a loaded machine may need; "quick" gives up after half a second, and is only asked
    # when the backend stays silent for good (its answers never race its timeout).
    quick = {**backend, "timeout": 0.5, "max_retries": 0}
    config = openai_config(tmp_path, others={"quick": quick}, **backend, timeout=60)
    app = create_app(config)
    async with running_client(app) as client:
        instances = app.state.binding_manager.instances
        down = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "binding_name": "oai"})
        assert down.status_code == 503  # unreachable at start-up: unavailable, with the reason
        async with serving_on(fake, port):
            instances["oai"].last_check = -math.inf  # as if the re-check interval had passed
            back = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
            await wait_until(lambda: instances["quick"].state is InstanceState.ACTIVE)  # re-checked every second
            fake.hold = asyncio.Event()  # the backend answers nothing any more
            try:
                slow = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "binding_name": "quick"})
            finally:
                fake.hold.set()  # the held request ends (its client is gone), so the backend can stop
            fake.hold = None
            again = await client.post("/api/v1/generate", json={"input_data": [FRANCE]})
    assert back.status_code == 200 and back.json()["output"][0]["data"] == "Hello from the fake."
    assert slow.status_code == 504 and slow.json()["code"] == "backend_timeout"
    assert again.status_code == 200


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
