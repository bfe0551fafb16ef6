"""/api/v1/generate over a scripted binding: selection, parameters, conversation, SSE, think, errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import ADA_CONVERSATION, add_scripted_binding, make_config, prompt, scripted_calls, scripted_hold


def scripted_config(tmp_path: Path, **sections: dict[str, Any]):  # type: ignore[no-untyped-def]
    sections.setdefault("bindings_map", {"scripted": "scripted_binding"})
    sections.setdefault("defaults", {"ttt_binding": "scripted", "default_max_output_tokens": 77})
    config = make_config(tmp_path, **sections)
    add_scripted_binding(config)
    return config


def parse_sse(text: str) -> tuple[list[dict[str, Any]], list[str]]:
    events, comments = [], []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            events.append(json.loads(block[len("data: ") :]))
        elif block.startswith(":"):
            comments.append(block)
    return events, comments


async def test_json_generation_with_layered_parameters(tmp_path: Path) -> None:
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        response = await client.post(
            "/api/v1/generate",
            json={"input_data": [prompt("hi")], "parameters": {"temperature": 0.3, "stop": "END", "extra": 1}},
        )
    body = response.json()
    assert response.status_code == 200, body
    assert body["output"][0] == {
        "type": "text",
        "data": "Hello world",
        "mime_type": None,
        "thoughts": None,
        "metadata": {"model": "model-a", "usage": {"completion_tokens": 2}},
    }
    assert body["request_id"] == response.headers["X-Request-ID"] and body["execution_time"] >= 0
    params = scripted_calls()[-1]["params"]
    assert params == {"max_tokens": 77, "temperature": 0.3, "stop": ["END"], "extra": 1}


async def test_conversation_is_built_from_input_items_in_order(tmp_path: Path) -> None:
    items = ADA_CONVERSATION
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        response = await client.post("/api/v1/generate", json={"input_data": items})
    assert response.status_code == 200
    call = scripted_calls()[-1]
    assert call["prompt"] == "What is my name?"
    assert call["request_info"]["messages"] == [
        {"role": "system", "content": "Be brief.\n\nAnswer in English."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"},
    ]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"binding_name": "ghost"}, 404, "binding instance 'ghost' not found"),
        ({"model_name": "model-z"}, 404, "model 'model-z' not found"),
        ({"generation_type": "tti", "binding_name": "scripted"}, 501, "does not run 'tti' (text to image)"),
        ({"generation_type": "txt"}, 400, "unknown generation_type 'txt'"),
        ({"personality": "nobody"}, 404, "personality 'nobody' not found"),
        ({"parameters": {"temperature": -1}}, 400, "temperature"),
        ({"parameters": {"max_tokens": "many"}}, 400, "max_tokens"),
        ({"input_data": [prompt("only system", "system_context")]}, 400, "user_prompt"),
        ({"input_data": []}, 422, "input_data"),
        ({"unknown_field": 1}, 422, "unknown_field"),
    ],
)
async def test_request_errors(tmp_path: Path, body: dict[str, Any], status: int, fragment: str) -> None:
    payload = {"input_data": [prompt("hi")], **body}
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        for stream in (False, True):
            response = await client.post("/api/v1/generate", json={**payload, "stream": stream})
            assert response.status_code == status, response.text
            assert fragment in response.text and response.json()["code"]


async def test_no_default_binding_is_a_clear_400(tmp_path: Path) -> None:
    config = scripted_config(tmp_path, defaults={"ttt_binding": None})
    async with running_client(create_app(config)) as client:
        response = await client.post("/api/v1/generate", json={"input_data": [prompt("hi")]})
    assert response.status_code == 400 and "defaults.ttt_binding" in response.json()["detail"]


async def test_multimodal_input_is_checked_against_the_model_used(tmp_path: Path) -> None:
    image = {"type": "image", "role": "input_image", "data": "aGVsbG8=", "mime_type": "image/png"}
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        refused = await client.post("/api/v1/generate", json={"input_data": [prompt("look"), image]})
        accepted = await client.post(
            "/api/v1/generate", json={"input_data": [prompt("look"), image], "model_name": "model-b"}
        )
    assert refused.status_code == 400 and "does not accept image input" in refused.json()["detail"]
    assert "model-a" in refused.json()["detail"]
    assert accepted.status_code == 200
    assert scripted_calls()[-1]["multimodal"][0].type == "image"


async def test_sse_stream_shape_and_headers(tmp_path: Path) -> None:
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        response = await client.post(
            "/api/v1/generate",
            json={"input_data": [prompt("hi")], "stream": True, "parameters": {"chunks": ["a", "b", "c"]}},
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    events, _ = parse_sse(response.text)
    assert [event["type"] for event in events] == ["chunk", "chunk", "chunk", "final"]
    assert "".join(event["content"] for event in events[:-1]) == "abc"
    final = events[-1]
    assert final["content"][0]["data"] == "abc" and final["content"][0]["type"] == "text"
    assert final["metadata"]["usage"] == {"completion_tokens": 3} and final["metadata"]["model"] == "model-a"


THINK_CHUNKS = ["Hel", "lo <thi", "nk>pondering", "</th", "ink> world<think>more"]


async def test_think_blocks_go_to_thoughts_in_both_modes(tmp_path: Path) -> None:
    payload = {"input_data": [prompt("hi")], "parameters": {"chunks": THINK_CHUNKS}}
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        plain = (await client.post("/api/v1/generate", json=payload)).json()["output"][0]
        streamed = await client.post("/api/v1/generate", json={**payload, "stream": True})
    assert plain["data"] == "Hello  world" and plain["thoughts"] == "pondering\n\nmore"
    events, _ = parse_sse(streamed.text)
    chunks = [event for event in events if event["type"] == "chunk"]
    assert "".join(event["content"] for event in chunks) == "Hello  world"
    assert "".join(event["thoughts"] or "" for event in chunks) == "pondering\n\nmore"
    assert all("<" not in event["content"] for event in chunks)
    assert events[-1]["content"][0]["thoughts"] == "pondering\n\nmore"


async def test_error_after_first_byte_arrives_in_the_stream(tmp_path: Path) -> None:
    payload = {"input_data": [prompt("hi")], "stream": True, "parameters": {"chunks": ["a", "b"], "fail_after": 1}}
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        response = await client.post("/api/v1/generate", json=payload)
        plain = await client.post("/api/v1/generate", json={**payload, "stream": False})
    events, _ = parse_sse(response.text)
    assert response.status_code == 200
    assert [event["type"] for event in events] == ["chunk", "error"]
    assert "internal detail" not in response.text
    assert response.headers["X-Request-ID"] in events[-1]["content"]
    assert plain.status_code == 500 and "internal detail" not in plain.text


async def test_keepalive_comments_while_waiting(tmp_path: Path) -> None:
    config = scripted_config(tmp_path, server={"sse_keepalive_interval": 0.05})
    app = create_app(config)
    # The first chunk comes before the response starts (failures up to it keep their status codes);
    # the silence before the second one is filled with keep-alive comments: the binding holds the second chunk
    # until the server has sent two of them, however long that takes.
    sent: list[bytes] = []
    second_chunk: asyncio.Event | None = None

    async def watching_keepalives(scope: Any, receive: Any, send: Any) -> None:
        async def watched(message: dict[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and message.get("body", b"").startswith(b": keep-alive"):
                sent.append(message["body"])
                if len(sent) == 2 and second_chunk is not None:
                    second_chunk.set()

        await app(scope, receive, watched)

    payload = {"input_data": [prompt("hi")], "stream": True, "parameters": {"chunks": ["first", "slow"], "hold": "ka"}}
    async with running_client(watching_keepalives) as client:  # type: ignore[arg-type]
        second_chunk = scripted_hold("ka")
        response = await client.post("/api/v1/generate", json=payload)
    events, comments = parse_sse(response.text)
    assert len(comments) >= 2 and events[-1]["type"] == "final"
    assert response.text.index(": keep-alive") < response.text.index('"content":"slow"')


async def test_binding_listing_and_model_info_endpoints(tmp_path: Path) -> None:
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        models = (await client.get("/api/v1/list_available_models/scripted")).json()
        info = (await client.get("/api/v1/get_model_info/scripted", params={"model_name": "model-b"})).json()
        default_info = (await client.get("/api/v1/get_model_info/scripted")).json()
        missing_model = await client.get("/api/v1/get_model_info/scripted", params={"model_name": "nope"})
        missing_binding = await client.get("/api/v1/list_available_models/ghost")
        no_tokenizer = await client.post("/api/v1/tokenize", json={"text": "hi"})
    assert [model["name"] for model in models["models"]] == ["model-a", "model-b"]
    assert models["models"][1]["supports_vision"] is True
    assert info["model_name"] == "model-b" and info["context_size"] == 1234 and info["details"]["quirk"] == "kept"
    assert default_info["model_name"] == "model-a"
    assert missing_model.status_code == 404 and missing_binding.status_code == 404
    assert no_tokenizer.status_code == 501 and no_tokenizer.json()["code"] == "not_implemented"


async def test_unavailable_binding_is_503(tmp_path: Path) -> None:
    config = scripted_config(tmp_path, bindings_map={"scripted": "scripted_binding", "broken": "nope_binding"})
    async with running_client(create_app(config)) as client:
        response = await client.post("/api/v1/generate", json={"input_data": [prompt("x")], "binding_name": "broken"})
    assert response.status_code == 503 and "unknown binding type" in response.json()["detail"]


async def test_the_binding_is_told_the_generation_type(tmp_path: Path) -> None:
    async with running_client(create_app(scripted_config(tmp_path))) as client:
        response = await client.post("/api/v1/generate", json={"input_data": [prompt("hi")], "generation_type": "ttt"})
    assert response.status_code == 200
    assert scripted_calls()[-1]["request_info"]["generation_type"] == "ttt"
