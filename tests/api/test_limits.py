"""Limits on what clients send, and honest queueing, on every API: body size (413 before reading past the cap),
items, characters, binary data, names, ill-formed Unicode, a bounded queue (503 + Retry-After)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, add_scripted_binding, make_config, prompt
from tests.server import serving

LIMITS = {
    "max_request_bytes": 200_000,
    "max_input_items": 20,
    "max_text_chars": 50_000,
    "max_binary_bytes": 10_000,
    "max_embedding_inputs": 8,
}
CHAT = [{"role": "user", "content": "hi"}]


def limited_config(tmp_path: Path, **sections: Any):  # type: ignore[no-untyped-def]
    sections.setdefault("bindings_map", {"local": "scripted_binding"})
    sections.setdefault("defaults", {"ttt_binding": "local"})
    config = make_config(tmp_path, limits=LIMITS, **sections)
    add_scripted_binding(config, "local", local=True)
    return config


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    """A raw client announces 100 MB and sends nothing: the 413 comes at once, nothing was read."""
    async with serving(create_app(limited_config(tmp_path))) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /api/v1/generate HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {TEST_API_KEY}\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
        body = await reader.read(4096)
        writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"limits.max_request_bytes" in body


async def test_a_streamed_oversized_body_is_cut_at_the_limit(tmp_path: Path) -> None:
    sent = 0

    async def chunks() -> Any:  # no Content-Length: the server has to count
        nonlocal sent
        for _ in range(1000):
            sent += 10_000
            yield b" " * 10_000

    async with serving(create_app(limited_config(tmp_path))) as url, httpx.AsyncClient(base_url=url) as client:
        try:
            response = await client.post(
                "/v1/chat/completions", content=chunks(), headers={"Authorization": f"Bearer {TEST_API_KEY}"}
            )
        except httpx.HTTPError:  # the server may close before the client has finished sending
            response = None
    if response is not None:
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"  # OpenAI's shape under /v1
    assert sent < 10_000_000


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/generate", {"input_data": [prompt("\\ud800 and more")]}),
        ("/v1/chat/completions", {"model": "local", "messages": [{"role": "user", "content": "x\\udc00"}]}),
        ("/api/chat", {"model": "local", "messages": [{"role": "user", "content": "\\ud83d"}]}),
        ("/api/v1/tokenize", {"text": "\\ud800"}),
        ("/v1/embeddings", {"input": ["ok", "\\udfff"]}),
    ],
)
async def test_lone_surrogates_are_a_400_everywhere(tmp_path: Path, path: str, body: dict[str, Any]) -> None:
    raw = json.dumps(body).replace("\\\\u", "\\u")  # the escape as a client sends it: \ud800
    async with running_client(create_app(limited_config(tmp_path))) as client:
        response = await client.post(path, content=raw, headers={"Content-Type": "application/json"})
        fine = await client.post(path, content=raw.replace("\\ud83d", "\\ud83d\\ude00"))
    assert response.status_code == 400, response.text
    assert "surrogate" in response.text
    if path == "/api/chat":
        assert fine.status_code == 200, fine.text  # a proper pair (an emoji) is fine


async def test_invalid_utf8_is_a_400(tmp_path: Path) -> None:
    async with running_client(create_app(limited_config(tmp_path))) as client:
        response = await client.post(
            "/api/v1/generate",
            content=b'{"input_data": [{"type": "text", "role": "user_prompt", "data": "\xed\xa0\x80"}]}',
        )
    assert response.status_code == 400 and "UTF-8" in response.text


async def test_items_characters_binary_data_and_names_are_bounded(tmp_path: Path) -> None:
    async with running_client(create_app(limited_config(tmp_path))) as client:

        async def generate(**body: Any) -> httpx.Response:
            return await client.post("/api/v1/generate", json=body)

        too_many = await generate(input_data=[prompt("a")] * 21)
        too_long = await generate(input_data=[prompt("a" * 50_001)])
        image = {"type": "image", "role": "input_image", "data": "A" * 20_000, "mime_type": "image/png"}
        too_big = await generate(input_data=[prompt("look"), image])
        long_name = await generate(input_data=[prompt("a")], model_name="m" * 5000)
        chat_items = await client.post("/v1/chat/completions", json={"model": "local", "messages": CHAT * 21})
        ollama_long = await client.post(
            "/api/chat", json={"model": "local", "messages": [{"role": "user", "content": "a" * 50_001}]}
        )
        inputs = await client.post("/v1/embeddings", json={"input": ["a"] * 9})
        tokenize = await client.post("/api/v1/tokenize", json={"text": "a" * 50_001})
        detokenize = await client.post("/api/v1/detokenize", json={"tokens": [1] * 50_001})
        helper = await client.post("/lollms/v1/tokenize", json={"model": "local", "text": "a" * 50_001})
        stops = await client.post("/v1/chat/completions", json={"model": "local", "messages": CHAT, "stop": ["x"] * 17})
        schema = {"type": "json_schema", "json_schema": {"name": "s", "schema": {"description": "d" * 70_000}}}
        big_schema = await generate(input_data=[prompt("a")], parameters={"response_format": schema})
        within = await generate(input_data=[prompt("a")] * 20)
    for response in (too_many, too_long, too_big, chat_items, inputs, tokenize, detokenize, helper):
        assert response.status_code == 413, response.text
    assert "limits.max_input_items" in too_many.json()["detail"]
    assert "limits.max_text_chars" in too_long.json()["detail"] and "input_data[0]" in too_long.json()["detail"]
    assert "limits.max_binary_bytes" in too_big.json()["detail"]
    assert chat_items.json()["error"]["code"] == "payload_too_large"
    assert ollama_long.status_code == 413 and "max_text_chars" in ollama_long.json()["error"]
    assert "max_embedding_inputs" in inputs.json()["error"]["message"]
    assert long_name.status_code == 400 and len(long_name.text) < 1000
    assert stops.status_code == 400 and "stop" in stops.json()["error"]["message"]
    assert big_schema.status_code == 400 and "response_format" in big_schema.json()["detail"]
    assert within.status_code == 200


async def test_a_full_queue_refuses_at_once_with_retry_after_in_every_api_shape(tmp_path: Path) -> None:
    config = limited_config(tmp_path, resource_manager={"gpu_limit": 1, "max_queue": 0})
    app = create_app(config)
    async with running_client(app) as client:
        manager = app.state.resource_manager
        assert (await client.post("/api/v1/generate", json={"input_data": [prompt("x")]})).status_code == 200
        holder = await manager.admit("the test holds the only slot")  # and nobody may wait: max_queue 0
        ours = await client.post("/api/v1/generate", json={"input_data": [prompt("x")]})
        ours_stream = await client.post("/api/v1/generate", json={"input_data": [prompt("x")], "stream": True})
        openai = await client.post("/v1/chat/completions", json={"model": "local", "messages": CHAT})
        ollama = await client.post("/api/chat", json={"model": "local", "messages": CHAT})
        holder.release()
        after = await client.post("/api/v1/generate", json={"input_data": [prompt("x")]})
    for response in (ours, ours_stream, openai, ollama):
        assert response.status_code == 503, response.text
        assert int(response.headers["Retry-After"]) >= 1
    assert ours.json()["code"] == "queue_full" and "max_queue" in ours.json()["detail"]
    assert openai.json()["error"]["code"] == "queue_full"
    assert "max_queue" in ollama.json()["error"]
    assert manager.stats().rejected_total == 4 and after.status_code == 200
