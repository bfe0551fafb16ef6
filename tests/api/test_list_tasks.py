"""Which instance runs which task, from what each binding declares (its card's supported_tasks), on a real server
with real whisper, hibari, musicgen and llama.cpp instances: whisper takes text in and gives text out, yet does
not generate text; hibari (speech) and musicgen (music) both turn text into audio, yet do not do each other's
task. Every place that answers "who runs this task" answers the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, prompt, write_instance
from tests.server import serving
from tests.zoo.test_llamacpp_binding import embedded_model

pytest.importorskip("llama_cpp", reason="install with ./run_tests.sh (builds llama-cpp-python)")
pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("faster_whisper", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("transformers", reason="install with ./run_tests.sh (the diffusers extra brings transformers)")

KEY = {"X-API-Key": TEST_API_KEY}


@pytest.fixture(scope="module")
def tiny_musicgen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_musicgen import build_tiny_musicgen

    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny-musicgen")


def four_instances(tmp_path: Path, tiny_musicgen: Path):  # type: ignore[no-untyped-def]
    config = make_config(
        tmp_path,
        bindings_map={"llama": "llamacpp_binding", "ears": "whisper_binding", "voice": "hibari_binding"}
        | {"music": "musicgen_binding"},
        # ttm on the speech instance: a default that does not run its task.
        defaults={"ttt_binding": "llama", "stt_binding": "ears", "tts_binding": "voice", "ttm_binding": "voice"},
    )
    write_instance(config, "llama", {"type": "llamacpp_binding", "default_model": str(embedded_model())})
    write_instance(config, "ears", {"type": "whisper_binding"})
    write_instance(config, "voice", {"type": "hibari_binding"})
    folder = config.paths.models_folder / "musicgen"
    folder.mkdir(parents=True)
    (folder / "tiny-musicgen").symlink_to(tiny_musicgen, target_is_directory=True)
    write_instance(config, "music", {"type": "musicgen_binding", "default_model": "tiny-musicgen"})
    return config


async def test_each_task_lists_the_instances_that_declare_it(tmp_path: Path, tiny_musicgen: Path) -> None:
    async with (
        serving(create_app(four_instances(tmp_path, tiny_musicgen))) as url,
        httpx.AsyncClient(base_url=url, timeout=600, headers=KEY) as client,
    ):
        active = (await client.get("/api/v1/list_active_bindings")).json()["bindings"]
        tasks = (await client.get("/api/v1/list_tasks")).json()["tasks"]
        capabilities = (await client.get("/lollms/v1/capabilities")).json()["active_bindings"]
        by_kind = {
            kind: [entry["binding"] for entry in (await client.get(f"/lollms/v1/{kind}/models")).json()["data"]]
            for kind in ("llm", "stt", "tts", "ttm")
        }
        ollama_tags = {tag["name"].split("/")[0] for tag in (await client.get("/api/tags")).json()["models"]}
        whisper_chat = await client.post(
            "/api/v1/generate", json={"binding_name": "ears", "generation_type": "ttt", "input_data": [prompt("hi")]}
        )
        speech_as_music = await client.post(
            "/api/v1/generate", json={"generation_type": "ttm", "input_data": [prompt("a calm piano tune")]}
        )
    assert sorted(active) == ["ears", "llama", "music", "voice"]  # all four started
    listed: dict[str, Any] = {name: task["bindings"] for name, task in tasks.items()}
    assert listed == {
        "ttt": ["llama"],
        "tti": [],
        "i2i": [],
        "ttv": [],
        "ttm": ["music"],
        "tts": ["voice"],
        "stt": ["ears"],
        "audio2audio": [],
    }
    defaults = {name: task["default_binding"] for name, task in tasks.items() if task["default_binding"]}
    assert defaults == {"ttt": "llama", "stt": "ears", "tts": "voice"}  # not ttm: voice does not make music
    assert capabilities == defaults
    assert {kind: sorted(set(names)) for kind, names in by_kind.items()} == {
        "llm": ["llama"],
        "stt": ["ears"],
        "tts": ["voice"],
        "ttm": ["music"],
    }
    assert "llama" in ollama_tags and not {"ears", "voice", "music"} & ollama_tags
    assert whisper_chat.status_code == 501
    assert "binding 'ears' does not run 'ttt' (text generation); it runs: stt" in whisper_chat.json()["detail"]
    assert speech_as_music.status_code == 501
    assert "'voice' does not run 'ttm' (text to music); it runs: tts" in speech_as_music.json()["detail"]
