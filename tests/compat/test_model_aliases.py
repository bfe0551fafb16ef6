"""model_aliases: names clients hard-code (gpt-4o, claude-..., text-embedding-3-small) mapped to lollms model ids,
accepted by every API and listed by /v1/models and /api/tags (lollms_client's embed(): test_openai_api.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from lollms_server.app import create_app
from lollms_server.core.errors import ConfigError
from tests.helpers import TEST_API_KEY, make_config, scripted_and_e5_config, scripted_calls
from tests.server import serving

ALIASES = {
    "gpt-4o": "scripted/model-b",
    "claude-local": "scripted",
    "text-embedding-3-small": "e5",
    "helper": "personality/lollms",
}


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[str]:
    config = scripted_and_e5_config(tmp_path)
    config.values["model_aliases"] = dict(ALIASES)
    async with serving(create_app(config)) as url:
        yield url


async def test_every_api_reads_aliases(server: str) -> None:
    question = [{"role": "user", "content": "hi"}]
    async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
        chat = await sdk.chat.completions.create(model="gpt-4o", messages=question)  # type: ignore[arg-type]
        openai_model = scripted_calls()[-1]["request_info"]["model_name"]
        vectors = await sdk.embeddings.create(model="text-embedding-3-small", input=["a red fox"])
        listed = {model.id: model for model in (await sdk.models.list()).data}
    async with anthropic.AsyncAnthropic(base_url=server, api_key=TEST_API_KEY, max_retries=0) as claude:
        message = await claude.messages.create(model="claude-local", max_tokens=10, messages=question)  # type: ignore[arg-type]
        anthropic_model = scripted_calls()[-1]["request_info"]["model_name"]
    async with ollama.AsyncClient(host=server, headers={"Authorization": f"Bearer {TEST_API_KEY}"}) as client:
        ollama_chat = await client.chat(model="gpt-4o", messages=question)
        tags = {model.model for model in (await client.list()).models}
    assert chat.choices[0].message.content == "Hello world" and openai_model == "model-b" and chat.model == "gpt-4o"
    assert len(vectors.data[0].embedding) == 384
    assert message.content[0].text == "Hello world" and anthropic_model == "model-a"  # type: ignore[union-attr]
    assert ollama_chat.message.content == "Hello world"
    assert set(ALIASES) <= set(listed) and set(ALIASES) <= tags
    assert listed["gpt-4o"].owned_by == "alias" and listed["gpt-4o"].model_extra["alias_of"] == "scripted/model-b"  # type: ignore[index]


async def test_an_alias_is_no_backdoor(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": TEST_API_KEY}) as http:
        unknown = await http.post(
            "/v1/chat/completions", json={"model": "gpt-5", "messages": [{"role": "user", "content": "x"}]}
        )
    assert unknown.status_code == 404 and "gpt-5" in unknown.json()["error"]["message"]


@pytest.mark.parametrize("target", ["nowhere/model", "gpt-4o", ""])
def test_an_alias_to_no_instance_fails_closed(tmp_path: Path, target: str) -> None:
    with pytest.raises(ConfigError, match="model_aliases"):
        make_config(tmp_path, bindings_map={"scripted": "scripted_binding"}, model_aliases={"x": target})


async def test_anthropic_image_blocks_reach_a_vision_model(server: str) -> None:
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
        {"type": "text", "text": "What is this?"},
    ]
    async with anthropic.AsyncAnthropic(base_url=server, api_key=TEST_API_KEY, max_retries=0) as claude:
        await claude.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": content}])  # type: ignore[arg-type]
    [image] = scripted_calls()[-1]["multimodal"]
    assert image.type == "image" and image.mime_type == "image/png" and image.data == png
    assert scripted_calls()[-1]["request_info"]["messages"][-1]["content"] == "What is this?"
