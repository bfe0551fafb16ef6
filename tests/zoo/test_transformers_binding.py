"""transformers_binding through the real server with a tiny random-weight Llama built in the test: chat template,
streaming, seeds, token endpoints, model info from the config, the context bound, and the openai SDK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, prompt, write_instance
from tests.server import serving

pytest.importorskip("transformers", reason="install with ./run_tests.sh (the diffusers extra brings transformers)")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_llama import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("transformers") / "tiny-llama")


@pytest.fixture
async def server(tmp_path: Path, tiny_model: Path) -> AsyncIterator[str]:
    config = make_config(tmp_path, bindings_map={"hf": "transformers_binding"}, defaults={"ttt_binding": "hf"})
    folder = config.paths.models_folder / "transformers"
    folder.mkdir(parents=True)
    (folder / "tiny-llama").symlink_to(tiny_model, target_is_directory=True)
    write_instance(config, "hf", {"type": "transformers_binding", "default_model": "tiny-llama", "num_threads": 1})
    async with serving(create_app(config)) as url:
        yield url


async def test_generation_streaming_seeds_and_usage(server: str) -> None:
    body = {"input_data": [prompt("Hello")], "parameters": {"max_tokens": 12, "seed": 3, "temperature": 0.8}}
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": TEST_API_KEY}, timeout=120) as http:
        once = await http.post("/api/v1/generate", json=body)
        again = await http.post("/api/v1/generate", json=body)
        streamed = await http.post("/api/v1/generate", json={**body, "stream": True})
        info = (await http.get("/api/v1/get_model_info/hf")).json()
        tokens = (await http.post("/api/v1/tokenize", json={"text": "Hi!", "binding_name": "hf"})).json()
        text = (await http.post("/api/v1/detokenize", json={"tokens": tokens["tokens"], "binding_name": "hf"})).json()
        too_long = await http.post("/api/v1/generate", json={"input_data": [prompt("x" * 400)]})
        unknown = await http.post("/api/v1/generate", json={"input_data": [prompt("hi")], "model_name": "../etc"})
    assert once.status_code == 200, once.text
    [answer] = once.json()["output"]
    assert answer["data"] == again.json()["output"][0]["data"]  # the same seed, the same tokens
    assert answer["metadata"]["usage"]["completion_tokens"] == 12 and answer["metadata"]["finish_reason"] == "length"
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    pieces = [event["content"] for event in events if event["type"] == "chunk"]
    assert len(pieces) > 1 and "".join(pieces) == answer["data"]
    assert info["context_size"] == 256 and info["details"]["family"] == "llama"
    assert tokens["count"] == 3 and text["text"] == "Hi!"
    assert too_long.status_code == 400 and "context of 256 tokens" in too_long.json()["detail"]
    assert unknown.status_code == 404


async def test_the_openai_sdk_chats_and_streams(server: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{server}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
        answer = await sdk.chat.completions.create(
            model="hf/tiny-llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, seed=1
        )
        stream = await sdk.chat.completions.create(
            model="hf", messages=[{"role": "user", "content": "Hi"}], max_tokens=5, seed=1, stream=True
        )
        streamed = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert streamed == answer.choices[0].message.content
