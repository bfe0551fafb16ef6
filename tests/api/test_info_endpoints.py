"""The info endpoints of the foundation: shapes from the spec, one error body, CORS."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lollms_server import __version__
from lollms_server.app import create_app
from tests.conftest import running_client
from tests.core.test_binding_manager import free_port
from tests.helpers import (
    SCRIPTED_BINDING_CODE,
    SCRIPTED_CARD,
    add_scripted_binding,
    make_config,
    write_binding_type,
    write_instance,
)


async def test_list_bindings_and_active_bindings(tmp_path: Path) -> None:
    port = free_port()
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    config = make_config(tmp_path, bindings_map={"up": "tcp_binding", "down": "tcp_binding"})
    write_binding_type(config.paths.bindings_folder)
    write_instance(config, "up", {"port": port, "api_key": "sk-up-secret-1"})
    write_instance(config, "down", {"port": free_port(), "api_key": "sk-down-secret-2"})
    try:
        async with running_client(create_app(config)) as client:
            listed = (await client.get("/api/v1/list_bindings")).json()
            active = (await client.get("/api/v1/list_active_bindings")).json()
    finally:
        server.close()
    card = listed["binding_types"]["tcp_binding"]
    for field in (
        "type_name",
        "display_name",
        "version",
        "author",
        "description",
        "requirements",
        "supports_streaming",
    ):
        assert field in card
    up = listed["binding_instances"]["up"]
    assert up["type"] == "tcp_binding" and up["binding_instance_name"] == "up" and up["status"] == "active"
    assert listed["binding_instances"]["down"]["status"] == "unavailable"
    assert "unreachable" in listed["binding_instances"]["down"]["error"]
    assert set(active["bindings"]) == {"up"} and active["bindings"]["up"]["port"] == port
    text = repr(listed) + repr(active)
    assert "sk-up-secret-1" not in text and "sk-down-secret-2" not in text


async def test_health_and_default_bindings(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        bindings_map={"local": "tcp_binding"},
        defaults={"ttt_binding": "local", "default_context_size": 8192},
    )
    async with running_client(create_app(config)) as client:
        health = (await client.get("/health")).json()
        defaults = (await client.get("/api/v1/get_default_bindings")).json()["defaults"]
    assert health == {"status": "ok", "version": __version__, "api_key_required": True}
    assert defaults["ttt_binding"] == "local" and defaults["tti_binding"] is None
    assert defaults["default_context_size"] == 8192 and defaults["default_max_output_tokens"] == 1024


async def test_list_models_scans_the_models_folder(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    models = config.paths.models_folder
    (models / "gguf").mkdir(parents=True)
    (models / "gguf" / "b.gguf").write_bytes(b"x")
    (models / "gguf" / "a.gguf").write_bytes(b"x")
    (models / "gguf" / ".hidden").write_bytes(b"x")
    (models / "diffusers_models" / "sdxl").mkdir(parents=True)
    (models / "custom").mkdir()
    async with running_client(create_app(config)) as client:
        found = (await client.get("/api/v1/list_models")).json()["models"]
    assert found["gguf"] == ["a.gguf", "b.gguf"]
    assert found["diffusers_models"] == ["sdxl"]
    assert found["tti"] == [] and found["custom"] == []


async def test_unexpected_errors_give_a_request_id_and_no_internals(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))

    @app.get("/api/v1/_explode")
    async def explode() -> None:
        raise RuntimeError("internal detail /etc/secret-path")

    async with running_client(app) as client:
        response = await client.get("/api/v1/_explode")
        not_found = await client.get("/api/v1/no_such_route")
        invalid = await client.get("/api/v1/list_bindings", headers={"X-API-Key": ""})
    body = response.json()
    assert response.status_code == 500 and body["code"] == "internal_error"
    assert body["request_id"] == response.headers["X-Request-ID"] and body["request_id"] in body["detail"]
    assert "secret-path" not in response.text
    assert not_found.status_code == 404 and set(not_found.json()) == {"detail", "code", "request_id"}
    assert invalid.status_code == 403


async def test_validation_errors_use_the_same_body(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))

    @app.get("/api/v1/_typed")
    async def typed(count: int) -> dict[str, int]:
        return {"count": count}

    async with running_client(app) as client:
        response = await client.get("/api/v1/_typed", params={"count": "many"})
    body = response.json()
    assert response.status_code == 422 and body["code"] == "validation_error"
    assert body["errors"][0]["loc"] == ["query", "count"] and "many" not in response.text


async def test_cors_allows_configured_origins_only_and_never_credentials(tmp_path: Path) -> None:
    config = make_config(tmp_path, server={"allowed_origins": ["http://ui.local:8080"]})
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    async with running_client(create_app(config)) as client:
        allowed = await client.options("/api/v1/list_bindings", headers={"Origin": "http://ui.local:8080", **preflight})
        other = await client.options("/api/v1/list_bindings", headers={"Origin": "http://evil.example", **preflight})
        null = await client.get("/health", headers={"Origin": "null"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://ui.local:8080"
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers
    assert "access-control-allow-origin" not in null.headers


async def test_unknown_endpoints_say_so_in_the_shape_of_their_api(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path))) as client:
        pull = await client.post("/api/pull", json={"model": "llama3"})
        blob = await client.head("/api/blobs/sha256:0123")
        speech = await client.post("/v1/moderations", json={"model": "omni-moderation-latest", "input": "hi"})
        responses = await client.post("/v1/responses", json={"model": "m", "input": "hi"})
        ours = await client.get("/api/v1/no_such_route")
        elsewhere = await client.get("/no_such_page")
        # Model management belongs to Ollama itself: each is refused in Ollama's shape, saying so.
        managing = [
            await client.request(method, f"/api/{path}", json={"model": "m", "source": "m", "destination": "n"})
            for method, path in (("POST", "push"), ("POST", "create"), ("POST", "copy"), ("DELETE", "delete"))
        ]
    assert {r.status_code for r in (pull, blob, speech, responses, ours, elsewhere, *managing)} == {404}
    for refused in managing:
        assert "is not supported by the Ollama-compatible API of this server" in refused.json()["error"]
    assert pull.json() == {
        "error": "POST /api/pull is not supported by the Ollama-compatible API of this server; "
        "/docs lists the endpoints it serves"
    }
    error = speech.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "not_found"
    assert error["message"].startswith("POST /v1/moderations is not supported by the OpenAI-compatible API")
    assert "POST /v1/responses is not supported" in responses.json()["error"]["message"]
    assert ours.json()["detail"].startswith("GET /api/v1/no_such_route is not supported by the lollms API")
    assert elsewhere.json()["detail"].startswith("GET /no_such_page is not supported by this server")


async def test_a_wrong_method_is_405_with_the_allowed_ones(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path))) as client:
        chat = await client.get("/v1/chat/completions")
        tags = await client.delete("/api/tags")
        generate = await client.get("/api/v1/generate")
    assert (chat.status_code, tags.status_code, generate.status_code) == (405, 405, 405)
    assert chat.headers["Allow"] == "POST" and tags.headers["Allow"] == "GET"
    assert chat.json()["error"]["message"] == "GET /v1/chat/completions: method not allowed; this endpoint accepts POST"
    assert chat.json()["error"]["code"] == "method_not_allowed"
    assert tags.json() == {"error": "DELETE /api/tags: method not allowed; this endpoint accepts GET"}
    assert generate.json()["code"] == "method_not_allowed" and "accepts POST" in generate.json()["detail"]


async def test_the_root_points_to_the_docs(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path)), api_key=None) as client:
        as_json = await client.get("/")
        as_html = await client.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        docs = await client.get(as_json.json()["docs"])
    assert as_json.status_code == 200
    assert as_json.json() == {
        "name": "lollms_server",
        "version": __version__,
        "health": "/health",
        "docs": "/docs",
        "openapi": "/openapi.json",
        "apis": {"lollms": "/api/v1", "openai": "/v1", "ollama": "/api"},
    }
    assert as_html.status_code == 200 and as_html.headers["content-type"].startswith("text/html")
    assert '<a href="/docs">' in as_html.text and '<a href="/health">' in as_html.text
    assert "<script" not in as_html.text and as_html.headers["Content-Security-Policy"] == "default-src 'none'"
    assert docs.status_code == 200


async def test_list_tasks_describes_inputs_parameters_and_who_can_run_each(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        bindings_map={"scripted": "scripted_binding", "ears": "listener_binding", "gone": "tcp_binding"},
        defaults={"ttt_binding": "scripted", "stt_binding": "ears", "tti_binding": "gone"},
    )
    add_scripted_binding(config)
    listener = SCRIPTED_BINDING_CODE.replace('"scripted_binding"', '"listener_binding"').replace(
        'return ["text", "image"]', 'return ["audio"]'
    )
    write_binding_type(
        config.paths.bindings_folder,
        "listener_binding",
        code=listener,
        card={**SCRIPTED_CARD, "type_name": "listener_binding"},
    )
    write_instance(config, "ears", {"type": "listener_binding"})
    write_binding_type(config.paths.bindings_folder)
    write_instance(config, "gone", {"port": free_port()})  # nothing listens: unavailable
    async with running_client(create_app(config)) as client:
        tasks = (await client.get("/api/v1/list_tasks")).json()["tasks"]
    assert set(tasks) == {"ttt", "tti", "i2i", "ttv", "ttm", "tts", "stt", "audio2audio"}
    assert tasks["ttt"]["bindings"] == ["scripted"] and tasks["ttt"]["default_binding"] == "scripted"
    # Both make text, but only the listener takes audio; the unavailable default is not offered.
    assert tasks["stt"]["bindings"] == ["ears"] and tasks["stt"]["required_inputs"] == ["input_audio"]
    assert tasks["tti"]["bindings"] == [] and tasks["tti"]["default_binding"] is None
    assert tasks["i2i"]["optional_inputs"] == ["mask_image"] and not tasks["i2i"]["needs_prompt"]
    # The parameters are the JSON Schema of the models that validate them, limits included.
    width = tasks["tti"]["parameters"]["properties"]["width"]["anyOf"][0]
    assert width == {"type": "integer", "minimum": 64, "maximum": 8192, "multipleOf": 8}
    formats = tasks["tts"]["parameters"]["properties"]["audio_format"]["anyOf"][0]["enum"]
    assert formats == ["wav", "mp3", "opus", "flac", "pcm"]
    assert tasks["tts"]["parameters"]["additionalProperties"] is False
    text = tasks["ttt"]["parameters"]["properties"]
    assert text["max_tokens"]["description"] and text["tool_choice"]["x-form"] is False  # a form leaves it out
