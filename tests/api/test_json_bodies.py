"""Request bodies are JSON whatever their declared type (as Ollama and OpenAI read them), on every API;
multipart keeps its type; browsers must declare JSON; a body that is not JSON says so in each API's shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi import FastAPI, Request

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import add_scripted_binding, make_config, prompt

GENERIC_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "application/octet-stream", "*/*"]
CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}], "stream": False}
# One request per API, each a body the route accepts when it is sent as application/json.
REQUESTS = {
    "openai": ("/v1/chat/completions", CHAT),
    "ollama": ("/api/chat", CHAT),
    "ollama_show": ("/api/show", {"model": "scripted"}),
    "lollms": ("/api/v1/generate", {"input_data": [prompt("hi")]}),
    "lollms_fastapi": ("/api/v1/count_tokens", {"text": "hi", "binding_name": "scripted"}),
}


def scripted_app(tmp_path: Path) -> FastAPI:
    config = make_config(tmp_path, bindings_map={"scripted": "scripted_binding"}, defaults={"ttt_binding": "scripted"})
    add_scripted_binding(config, default_model="model-a")
    return create_app(config)


def with_type(content_type: str | None) -> dict[str, str]:
    return {"Content-Type": content_type} if content_type else {}


@pytest.mark.parametrize("content_type", GENERIC_TYPES)
async def test_json_without_a_json_content_type_is_read_as_json(tmp_path: Path, content_type: str | None) -> None:
    async with running_client(scripted_app(tmp_path)) as client:
        answers = {
            api: await client.post(path, content=json.dumps(body), headers=with_type(content_type))
            for api, (path, body) in REQUESTS.items()
        }
    # count_tokens is refused by the scripted binding (it cannot tokenize): 501, not a 422 about the body.
    expected = {"openai": 200, "ollama": 200, "ollama_show": 200, "lollms": 200, "lollms_fastapi": 501}
    assert {api: answer.status_code for api, answer in answers.items()} == expected, {
        api: answer.text for api, answer in answers.items()
    }
    assert answers["openai"].json()["choices"][0]["message"]["content"] == "Hello world"
    assert answers["ollama"].json()["message"]["content"] == "Hello world"


async def test_litellm_style_ollama_request_without_content_type(tmp_path: Path) -> None:
    """litellm's Ollama provider posts its JSON with no Content-Type at all."""
    body = {"model": "scripted", "prompt": "hi", "stream": False, "options": {"num_predict": 5}}
    async with running_client(scripted_app(tmp_path)) as client:
        request = client.build_request("POST", "/api/generate", content=json.dumps(body).encode())
        assert "content-type" not in request.headers
        answer = await client.send(request)
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"] == "Hello world" and answer.json()["done"]


@pytest.mark.parametrize(
    ("path", "error_of"),
    [
        ("/v1/chat/completions", lambda body: body["error"]["message"]),
        ("/api/chat", lambda body: body["error"]),
        ("/api/v1/generate", lambda body: body["detail"]),
        ("/api/v1/count_tokens", lambda body: body["detail"]),
    ],
)
async def test_a_body_that_is_not_json_says_it_must_be_json(tmp_path: Path, path: str, error_of) -> None:  # type: ignore[no-untyped-def]
    async with running_client(scripted_app(tmp_path)) as client:
        plain = await client.post(path, content=b"model=scripted&prompt=hi", headers=with_type("text/plain"))
        declared = await client.post(path, content=b"{not json", headers=with_type("application/json"))
    for answer in (plain, declared):
        assert answer.status_code == 422
        assert error_of(answer.json()).startswith("the request body must be JSON"), answer.text


async def test_browsers_must_declare_json(tmp_path: Path) -> None:
    """A page may send text/plain cross-site without a preflight: requests with an Origin get no tolerance."""
    browser = {"Origin": "http://elsewhere.example", "Content-Type": "text/plain"}
    async with running_client(scripted_app(tmp_path)) as client:
        answers = {
            api: await client.post(path, content=json.dumps(body), headers=browser)
            for api, (path, body) in REQUESTS.items()
        }
        declared = await client.post("/v1/chat/completions", json=CHAT, headers={"Origin": "http://elsewhere.example"})
    assert {answer.status_code for answer in answers.values()} == {415}
    assert "application/json" in answers["openai"].json()["error"]["message"]
    assert "text/plain" in answers["ollama"].json()["error"]
    assert answers["lollms"].json()["code"] == "unsupported_media_type"
    assert declared.status_code == 200


async def test_multipart_bodies_keep_their_type(tmp_path: Path) -> None:
    app = scripted_app(tmp_path)

    @app.post("/api/v1/_echo_type")
    async def echo_type(request: Request) -> dict[str, str]:
        return {"content_type": request.headers.get("content-type", "")}

    async with running_client(app) as client:
        upload = await client.post("/api/v1/_echo_type", files={"file": ("a.wav", b"RIFF....", "audio/wav")})
        plain = await client.post("/api/v1/_echo_type", content=b"{}", headers=with_type("text/plain"))
        outside = await client.post("/health", content=b"{}", headers=with_type("text/plain"))
    assert upload.json()["content_type"].startswith("multipart/form-data; boundary=")
    assert plain.json()["content_type"] == "application/json"
    assert outside.status_code == 405  # outside the APIs nothing is rewritten (and /health is GET only)
