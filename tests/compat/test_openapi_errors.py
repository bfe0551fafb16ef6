"""The OpenAPI schema documents the statuses the compatible routes really return, each with its API's error body
(OpenAI's object under /v1, Ollama's string under /api, ours under /api/v1), and the bodies match it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lollms_server.api.anthropic_compat.protocol import AnthropicErrorResponse
from lollms_server.api.models import ErrorResponse
from lollms_server.api.ollama_compat.protocol import OllamaErrorResponse
from lollms_server.api.openai_compat.protocol import OpenAIErrorResponse
from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config

GENERATION = {"400", "401", "403", "404", "408", "413", "415", "422", "429", "500", "501", "502", "503", "504", "508"}


def error_refs(operation: dict[str, Any]) -> dict[str, str]:
    return {
        status: response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for status, response in operation["responses"].items()
        if status != "200"
    }


async def test_compatible_routes_document_their_error_statuses_and_shapes(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path))) as client:
        schema = (await client.get("/openapi.json")).json()
    paths = schema["paths"]
    for path, method in (
        ("/v1/chat/completions", "post"),
        ("/v1/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/api/chat", "post"),
        ("/api/generate", "post"),
        ("/api/embed", "post"),
        ("/api/v1/generate", "post"),
    ):
        refs = error_refs(paths[path][method])
        assert set(refs) == GENERATION, path
        expected = "OpenAIErrorResponse" if path.startswith("/v1/") else "ErrorResponse"
        expected = "OllamaErrorResponse" if path.startswith("/api/") and "/v1/" not in path else expected
        assert set(refs.values()) == {expected}, path
    assert error_refs(paths["/v1/models/{model_id}"]["get"]) == dict.fromkeys(
        ("401", "403", "404", "422", "500", "503"), "OpenAIErrorResponse"
    )
    assert set(error_refs(paths["/api/tags"]["get"])) == {"401", "403", "500", "503"}
    # FastAPI's own 422 body is nowhere: every 422 is the error body of its API.
    assert "HTTPValidationError" not in repr(schema)
    assert error_refs(paths["/api/v1/tokenize"]["post"])["422"] == "ErrorResponse"
    # Anthropic's route under /v1/ documents Anthropic's body, as it answers (the most precise owner wins).
    assert set(error_refs(paths["/v1/messages"]["post"]).values()) == {"AnthropicErrorResponse"}
    definitions = schema["components"]["schemas"]
    assert definitions["OllamaErrorResponse"]["properties"]["error"]["type"] == "string"
    assert definitions["OpenAIErrorResponse"]["properties"]["error"]["$ref"].endswith("/OpenAIError")


async def test_error_bodies_match_the_documented_models(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path))) as client:
        openai_errors = [
            await client.post("/v1/chat/completions", json={"model": "x"}),  # 422
            await client.post("/v1/chat/completions", json={"model": "x", "messages": [], "n": 2}),
            await client.get("/v1/models/nope"),  # 404
            await client.get("/v1/moderations"),  # unknown endpoint
        ]
        ollama_errors = [
            await client.post("/api/chat", content=b"{"),  # not JSON
            await client.post("/api/show", json={"model": "nowhere/model"}),  # 404
            await client.post("/api/pull", json={"model": "m"}),  # unknown endpoint
        ]
        anthropic_errors = [
            await client.post("/v1/messages", json={"model": "x"}),  # 422
            await client.post(
                "/v1/messages",
                json={"model": "nowhere/m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            ),
        ]
        ours = await client.post("/api/v1/generate", content=b"[")
    for answer in openai_errors:
        OpenAIErrorResponse.model_validate_json(answer.content)
    for answer in ollama_errors:
        OllamaErrorResponse.model_validate_json(answer.content)
    for answer in anthropic_errors:
        AnthropicErrorResponse.model_validate_json(answer.content)
    assert [answer.status_code for answer in anthropic_errors] == [422, 404]
    ErrorResponse.model_validate_json(ours.content)
    assert [answer.status_code for answer in openai_errors] == [422, 422, 404, 404]
    assert [answer.status_code for answer in ollama_errors] == [422, 404, 404]
