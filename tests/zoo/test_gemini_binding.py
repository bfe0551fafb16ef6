"""gemini_binding through the HTTP API, against a loopback fake of the Gemini REST API (gemini_server.py)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.server
from lollms_server.app import create_app
from lollms_server.core.config import ServerConfig
from tests.conftest import running_client
from tests.helpers import ADA_CONVERSATION, make_config, prompt, until_active, write_instance
from tests.server import free_port, serving
from tests.zoo.gemini_server import THOUGHT_TOKENS, FakeGemini
from tests.zoo.key_echoes import leaks

pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")

# Not shaped like a Google key, and changed by URL-encoding: the fake echoes it in every form.
API_KEY = "gemini-test/secret+4242=Qz"
WRONG_KEY = "not-the-right/key+777"
CHAT = {"model": "gemini", "messages": [{"role": "user", "content": "hi"}]}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
THINKER = "gemini-2.0-flash-thinking-exp"


def parse_sse(text: str) -> list[dict[str, Any]]:
    return [json.loads(block[len("data: ") :]) for block in text.split("\n\n") if block.startswith("data: ")]


def gemini_config(root: Path, base_url: str, instances: dict[str, dict[str, Any]] | None = None) -> ServerConfig:
    """A server config with a "gemini" instance on ``base_url`` (fast retries) plus ``instances``."""
    instances = {"gemini": {}, **(instances or {})}
    config = make_config(
        root, bindings_map={name: "gemini_binding" for name in instances}, defaults={"ttt_binding": "gemini"}
    )
    for name, values in instances.items():
        settings = {"type": "gemini_binding", "api_key": API_KEY, "base_url": base_url, "retry_backoff": 0.01}
        write_instance(config, name, {**settings, **values})
    return config


@asynccontextmanager
async def gemini_client(
    root: Path, instances: dict[str, dict[str, Any]] | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeGemini]]:
    fake = FakeGemini(api_key=API_KEY)
    async with serving(fake.app()) as url:
        async with running_client(create_app(gemini_config(root, url, instances))) as client:
            yield client, fake


async def generate(client: httpx.AsyncClient, items: list[dict[str, Any]], **body: Any) -> httpx.Response:
    return await client.post("/api/v1/generate", json={"input_data": items, **body})


def remote_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What remote.py logged about backend answers."""
    return [record.getMessage() for record in caplog.records if record.name == "lollms_server.core.remote"]


async def test_generation_maps_parameters_usage_and_finish_reason(tmp_path: Path) -> None:
    parameters = {"temperature": 0.3, "top_k": 20, "top_p": 0.9, "seed": 7, "stop": ["zzz"], "repeat_penalty": 1.3}
    async with gemini_client(tmp_path) as (client, fake):
        full = await generate(client, [prompt("What is the capital of France?")], parameters=parameters)
        sent = fake.last("generate").body
        cut = await generate(client, [prompt("one two three four five")], parameters={"max_tokens": 3})
    output = full.json()["output"][0]
    assert full.status_code == 200, full.text
    assert output["data"] == "Echo: What is the capital of France?" and output["thoughts"] is None
    assert output["metadata"] == {
        "model": "gemini-2.5-flash",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13},
    }
    assert fake.last("generate").model == "gemini-2.5-flash"
    config = sent["generationConfig"]
    assert {key: config[key] for key in ("temperature", "topK", "topP", "seed", "stopSequences")} == {
        "temperature": 0.3,
        "topK": 20,
        "topP": 0.9,
        "seed": 7,
        "stopSequences": ["zzz"],
    }
    assert config["maxOutputTokens"] == 1024  # the server's default_max_output_tokens
    cut_output = cut.json()["output"][0]
    assert cut_output["data"] == "Echo: one two " and cut_output["metadata"]["finish_reason"] == "length"


async def test_streaming_is_chunked_and_ends_with_usage(tmp_path: Path) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, [prompt("stream these five words please")], stream=True)
    events = parse_sse(response.text)
    chunks = [event for event in events if event["type"] == "chunk"]
    assert response.status_code == 200 and events[-1]["type"] == "final"
    assert len(chunks) == 6 and "".join(chunk["content"] for chunk in chunks) == "Echo: stream these five words please"
    final = events[-1]
    assert final["content"][0]["data"] == "Echo: stream these five words please"
    assert final["metadata"]["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    assert final["metadata"]["finish_reason"] == "stop"
    assert fake.count("stream") == 1 and fake.last("stream").query == {"alt": "sse"}


async def test_multi_turn_history_and_system_instruction(tmp_path: Path) -> None:
    items = ADA_CONVERSATION
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, items)
    assert response.status_code == 200
    body = fake.last("generate").body
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief.\n\nAnswer in English."}]
    assert [(turn["role"], turn["parts"]) for turn in body["contents"]] == [
        ("user", [{"text": "My name is Ada."}]),
        ("model", [{"text": "Nice to meet you, Ada."}]),
        ("user", [{"text": "What is my name?"}]),
    ]


async def test_images_are_sent_inline_on_the_last_user_turn(tmp_path: Path) -> None:
    image = {"type": "image", "role": "input_image", "data": base64.b64encode(PNG).decode()}
    webp = {"type": "image", "role": "input_image", "data": "data:image/webp;base64,UklGRgAAAABXRUJQ"}
    audio = {"type": "audio", "role": "input_audio", "data": "aGk=", "mime_type": "audio/wav"}
    async with gemini_client(tmp_path) as (client, fake):
        seen = await generate(client, [prompt("Earlier."), prompt("Ok.", "assistant_reply"), prompt("Look."), image])
        sent = fake.last("generate").body
        two = await generate(client, [prompt("Compare."), image, webp])
        two_parts = fake.last("generate").body["contents"][-1]["parts"]
        sound = await generate(client, [prompt("Listen."), audio])
        text_only_model = await generate(client, [prompt("Look."), image], model_name="gemma-3-27b-it")
    assert seen.status_code == 200 and seen.json()["output"][0]["data"] == "Echo: Look. [1 image]"
    last = sent["contents"][-1]
    assert last["role"] == "user" and last["parts"][1] == {"text": "Look."}
    inline = last["parts"][0]["inlineData"]
    assert base64.b64decode(inline["data"]) == PNG and inline["mimeType"] == "image/png"  # sniffed
    assert all("inlineData" not in part for turn in sent["contents"][:-1] for part in turn["parts"])
    assert two.json()["output"][0]["data"] == "Echo: Compare. [2 images]"
    assert [part["inlineData"]["mimeType"] for part in two_parts[:2]] == ["image/png", "image/webp"]
    assert sound.status_code == 400 and "audio" in sound.json()["detail"]
    assert text_only_model.status_code == 400 and "image" in text_only_model.json()["detail"]


async def test_safety_settings_are_sent_and_checked(tmp_path: Path) -> None:
    instances = {
        "gemini": {"safety_settings": ["HARM_CATEGORY_HARASSMENT:BLOCK_ONLY_HIGH", "dangerous_content:block_none"]},
        "careless": {"safety_settings": ["HARM_CATEGORY_HARASSMENT:BLOCK_EVERYTHING"]},
    }
    async with gemini_client(tmp_path, instances) as (client, fake):
        response = await generate(client, [prompt("hi")])
        bindings = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
    assert response.status_code == 200
    assert fake.last("generate").body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"},
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"},
    ]
    careless = bindings["careless"]
    assert careless["status"] == "error" and "BLOCK_EVERYTHING" in careless["error"]
    assert "BLOCK_ONLY_HIGH" in careless["error"]  # the valid thresholds are listed


async def test_thoughts_in_both_modes(tmp_path: Path) -> None:
    instances = {"terse": {"include_thoughts": False}}
    ask = [prompt("Why is the sky blue?")]
    async with gemini_client(tmp_path, instances) as (client, fake):
        plain = (await generate(client, ask, model_name=THINKER)).json()["output"][0]
        streamed = parse_sse((await generate(client, ask, model_name=THINKER, stream=True)).text)
        hidden = (await generate(client, ask, model_name=THINKER, binding_name="terse")).json()["output"][0]
        hidden_config = fake.last("generate").body["generationConfig"]
        await generate(client, ask, model_name="gemini-2.0-flash")  # its metadata says it does not think
        plain_config = fake.last("generate").body["generationConfig"]
    assert plain["data"] == "Echo: Why is the sky blue?" and plain["thoughts"] == "Pondering 5 words."
    assert plain["metadata"]["usage"]["completion_tokens"] == 6 + THOUGHT_TOKENS
    chunks = [event for event in streamed if event["type"] == "chunk"]
    assert chunks[0]["thoughts"] == "Pondering 5 words." and chunks[0]["content"] == ""
    assert "".join(chunk["content"] for chunk in chunks) == "Echo: Why is the sky blue?"
    assert streamed[-1]["content"][0]["thoughts"] == "Pondering 5 words."
    assert hidden["thoughts"] is None and "thinkingConfig" not in hidden_config
    assert "thinkingConfig" not in plain_config


async def test_model_listing_info_and_unknown_models(tmp_path: Path) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        listed = (await client.get("/api/v1/list_available_models/gemini")).json()["models"]
        pages = [call.query.get("pageToken") for call in fake.calls if call.query.get("pageSize") == "1000"]
        info = (await client.get("/api/v1/get_model_info/gemini")).json()
        named = (
            await client.get("/api/v1/get_model_info/gemini", params={"model_name": "models/gemma-3-27b-it"})
        ).json()
        unknown_info = await client.get("/api/v1/get_model_info/gemini", params={"model_name": "gemini-9"})
        unknown = await generate(client, [prompt("hi")], model_name="gemini-9")
    by_name = {model["name"]: model for model in listed}
    # The embedder does not generate; Imagen does, through predict.
    assert list(by_name) == [
        "gemini-2.5-flash",
        "gemini-2.0-flash",
        THINKER,
        "gemma-3-27b-it",
        "gemini-2.5-flash-image",
        "gemini-2.5-flash-preview-tts",
        "imagen-4.0-generate-001",
    ]
    assert by_name["imagen-4.0-generate-001"]["model_type"] == "tti"
    assert pages == [None, "2", "4", "6"]  # two models per page: the binding followed nextPageToken
    assert by_name["gemini-2.5-flash"]["context_size"] == 1048576 and by_name["gemini-2.5-flash"]["supports_vision"]
    assert by_name["gemma-3-27b-it"]["supports_vision"] is False
    assert info["model_name"] == "gemini-2.5-flash" and info["model_type"] == "ttt"
    assert info["context_size"] == 1048576 and info["max_output_tokens"] == 65536
    assert info["supports_vision"] is True and info["supports_streaming"] is True
    assert info["details"]["display_name"] == "Gemini 2.5 Flash"
    assert info["details"]["supported_generation_methods"] == ["generateContent", "countTokens"]
    assert named["model_name"] == "gemma-3-27b-it" and named["max_output_tokens"] == 8192
    assert unknown_info.status_code == 404
    assert unknown.status_code == 404 and "gemini-9" in unknown.json()["detail"]
    assert "gemini-2.5-flash" in unknown.json()["detail"]  # the available models are listed


async def test_backend_failures_map_to_statuses_and_recover(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    instances = {"quick": {"timeout": 0.5, "max_retries": 1}}
    ask = [prompt("hi")]
    async with gemini_client(tmp_path, instances) as (client, fake):
        fake.fail(401)
        refused = await generate(client, ask)
        fake.fail(404)
        unknown = await generate(client, ask)
        fake.fail(429, retry_delay="0.01s")
        before = fake.count("generate")
        limited = await generate(client, ask)
        limited_calls = fake.count("generate") - before
        fake.fail(500)
        before = fake.count("generate")
        failed = await generate(client, ask)
        failed_calls = fake.count("generate") - before
        await until_active(client, "quick")  # its half-second health checks may need a few tries
        fake.fail(delay=1.5)  # each attempt waits three times quick's timeout: the timeout fires first
        before = fake.count("generate")
        slow = await generate(client, ask, binding_name="quick")
        slow_calls = fake.count("generate") - before
        fake.heal()
        recovered = await generate(client, ask)
    assert refused.status_code == 502 and refused.json()["code"] == "backend_unauthorized"
    # The backend's words (which echo the key in every form) go to the log, masked; never to the client.
    for answer in (refused, unknown, limited, failed):
        assert "injected failure" not in answer.text and leaks(answer.text, API_KEY) == []
    assert any("Binding 'gemini'" in line and "injected failure (key ***" in line for line in remote_warnings(caplog))
    assert leaks(caplog.text, API_KEY) == []
    listed = (
        "gemini-2.0-flash, gemini-2.0-flash-thinking-exp, gemini-2.5-flash, gemini-2.5-flash-image, "
        "gemini-2.5-flash-preview-tts, gemma-3-27b-it, imagen-4.0-generate-001"
    )
    assert unknown.status_code == 404 and unknown.json()["detail"].endswith(f"(models it lists: {listed})")
    assert limited.status_code == 429 and limited_calls == 3
    assert failed.status_code == 502 and failed.json()["code"] == "backend_error" and failed_calls == 3
    assert slow.status_code == 504 and slow.json()["code"] == "backend_timeout" and slow_calls == 2
    assert recovered.status_code == 200 and recovered.json()["output"][0]["data"] == "Echo: hi"


async def test_unreachable_backend_then_back_without_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setattr(tests.server, "free_port", lambda: port)  # the backend comes back on the same port
    fake = FakeGemini(api_key=API_KEY)
    backend: Any = serving(fake.app())
    url = await backend.__aenter__()
    try:
        async with running_client(create_app(gemini_config(tmp_path, url))) as client:
            before = await generate(client, [prompt("hi")])
            await backend.__aexit__(None, None, None)
            backend = None
            gone = await generate(client, [prompt("hi")])
            async with serving(fake.app()):
                back = await generate(client, [prompt("hi again")])
    finally:
        if backend is not None:
            await backend.__aexit__(None, None, None)
    assert before.status_code == 200
    assert gone.status_code == 503 and gone.json()["code"] == "backend_unreachable"
    assert back.status_code == 200 and back.json()["output"][0]["data"] == "Echo: hi again"


async def test_streams_retry_before_the_first_byte_only(tmp_path: Path) -> None:
    ask = [prompt("one two three four")]
    async with gemini_client(tmp_path) as (client, fake):
        fake.fail(break_stream_after=2, operations=("stream",))
        broken = await generate(client, ask, stream=True)
        broken_calls = fake.count("stream")
        fake.fail(500, operations=("stream",))
        refused = await generate(client, ask, stream=True)
        refused_calls = fake.count("stream") - broken_calls
    events = parse_sse(broken.text)
    assert [event["type"] for event in events] == ["chunk", "chunk", "error"]
    assert "".join(event["content"] for event in events[:2]) == "Echo: one "
    assert "HTTP 500" in events[-1]["content"] and broken_calls == 1
    # Refused before any event: the failure keeps its status code even though the request streams.
    assert refused.status_code == 502 and "HTTP 500" in refused.json()["detail"] and refused_calls == 3


async def test_missing_or_wrong_api_key_makes_the_instance_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("GOOGLE_API_KEY", "GEMINI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    instances: dict[str, dict[str, Any]] = {"keyless": {"api_key": None}, "wrong": {"api_key": WRONG_KEY}}
    async with gemini_client(tmp_path, instances) as (client, fake):
        listing = await client.get("/api/v1/list_bindings")
        keyless = await generate(client, [prompt("hi")], binding_name="keyless")
    bindings = listing.json()["binding_instances"]
    assert bindings["keyless"]["status"] == "unavailable" and "no api_key" in bindings["keyless"]["error"]
    assert bindings["wrong"]["status"] == "unavailable" and "HTTP 401" in bindings["wrong"]["error"]
    assert bindings["gemini"]["status"] == "active"
    assert "API key not valid" not in listing.text  # the backend's words (they echo the key) are not repeated
    assert leaks(listing.text, WRONG_KEY) == [] and leaks(listing.text, API_KEY) == []
    assert keyless.status_code == 503
    assert fake.calls and all(call.with_key for call in fake.calls)  # the keyless instance never called


async def test_api_key_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv("GEMINI_API_KEY", API_KEY)
    async with gemini_client(tmp_path, {"gemini": {"api_key": None}}) as (client, fake):
        served = await generate(client, [prompt("hi")])
        fake.fail(403)
        refused = await generate(client, [prompt("hi")])
    assert served.status_code == 200 and fake.last("generate").with_key
    assert refused.status_code == 502 and refused.json()["code"] == "backend_unauthorized"
    assert leaks(refused.text, API_KEY) == [] and leaks(caplog.text, API_KEY) == []


async def test_refused_credentials_are_502_in_every_api_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with gemini_client(tmp_path) as (client, fake):
        fake.fail(401)
        ours = await generate(client, [prompt("hi")])
        openai_shape = await client.post("/v1/chat/completions", json=CHAT)
        ollama_shape = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert ours.status_code == 502 and ours.json()["code"] == "backend_unauthorized" and ours.json()["request_id"]
    assert "refused the instance's credentials (HTTP 401)" in ours.json()["detail"]
    error = openai_shape.json()["error"]
    assert openai_shape.status_code == 502 and error["code"] == "backend_unauthorized"
    assert ollama_shape.status_code == 502 and "credentials (HTTP 401)" in ollama_shape.json()["error"]
    for answer in (ours, openai_shape, ollama_shape):
        assert "injected failure" not in answer.text and leaks(answer.text, API_KEY) == []
    assert leaks(caplog.text, API_KEY) == []


async def test_html_or_event_stream_answers_are_502_naming_them(tmp_path: Path) -> None:
    ask = [prompt("hi")]
    async with gemini_client(tmp_path) as (client, fake):
        fake.fail(answer="html")
        html = await generate(client, ask)
        html_calls = fake.count("generate")
        html_stream = await generate(client, ask, stream=True)
        html_openai = await client.post("/v1/chat/completions", json=CHAT)
        fake.fail(answer="sse")
        sse = await generate(client, ask)
        fake.fail(answer="html", operations=("list", "get"))
        listing = await client.get("/api/v1/list_available_models/gemini")
        info = await client.get("/api/v1/get_model_info/gemini")
    # Generation names the content type it got; the model list (google-genai, which hides the headers) what the
    # body looks like.
    html_page = "binding 'gemini': the backend answered text/html, not JSON: is base_url right?"
    assert html.status_code == 502 and html.json()["code"] == "backend_error" and html.json()["detail"] == html_page
    assert html_calls == 1  # the same page would come back: not retried
    html_for_stream = "binding 'gemini': the backend answered text/html, not an event stream: is base_url right?"
    assert html_stream.status_code == 502 and html_stream.json()["detail"] == html_for_stream
    assert html_openai.status_code == 502 and html_openai.json()["error"]["message"] == html_page
    assert sse.status_code == 502 and "the backend answered text/event-stream, not JSON" in sse.json()["detail"]
    expected = "binding 'gemini': the backend answered an HTML page, not JSON: is base_url right?"
    for answer in (listing, info):
        assert answer.status_code == 502 and answer.json()["detail"] == expected
    # Checked at start-up: the instance is unavailable and says why.
    fake = FakeGemini(api_key=API_KEY)
    fake.fail(answer="html", operations=("list",))
    async with serving(fake.app()) as url:
        async with running_client(create_app(gemini_config(tmp_path / "wrong", url))) as client:
            instances = (await client.get("/api/v1/list_bindings")).json()["binding_instances"]
    assert instances["gemini"]["status"] == "unavailable" and instances["gemini"]["error"] == expected


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"temperature": "hot"}, "temperature: 'hot' is not a number"),
        ({"max_tokens": 2.5}, "max_tokens: 2.5 is not an integer"),
        ({"top_k": True}, "top_k: True is not an integer"),
        ({"top_p": float("nan")}, "top_p: nan is not a number"),
        ({"max_tokens": float("inf")}, "max_tokens: inf is not an integer"),
        ({"stop": ["ok", 3]}, "stop: ['ok', 3] is not a string or strings"),
    ],
)
def test_parameters_of_the_wrong_kind_are_refused_by_name(params: dict[str, Any], named: str) -> None:
    """What a workflow hands the binding directly (the API validates the parameters it knows before)."""
    from lollms_server.core.errors import BadRequestError
    from zoos.bindings.gemini_binding.messages import build_body

    with pytest.raises(BadRequestError) as refused:
        build_body(None, [], params, [], thoughts=False)
    assert str(refused.value).endswith(f"invalid parameters: {named}")


def test_parameters_of_the_right_kind_become_the_generation_config() -> None:
    from zoos.bindings.gemini_binding.messages import build_body

    body = build_body("Be brief.", [], {"max_tokens": 5.0, "temperature": 1, "stop": "x", "seed": -1}, [], False)
    assert body["generationConfig"] == {"maxOutputTokens": 5, "temperature": 1.0, "stopSequences": ["x"]}
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
