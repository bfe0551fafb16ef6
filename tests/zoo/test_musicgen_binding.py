"""musicgen_binding through the real server with a tiny random-weight MusicGen built in the test: WAV of the asked
duration, the same seed the same audio, progress while streaming, and the duration cap."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, prompt, write_instance

pytest.importorskip("transformers", reason="install with ./run_tests.sh (the diffusers extra brings transformers)")
soundfile = pytest.importorskip("soundfile")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_musicgen import build_tiny_musicgen

    return build_tiny_musicgen(tmp_path_factory.mktemp("musicgen") / "tiny-musicgen")


async def test_music_of_the_asked_duration_with_seeds_and_progress(tmp_path: Path, tiny_model: Path) -> None:
    config = make_config(tmp_path, bindings_map={"music": "musicgen_binding"}, defaults={"ttm_binding": "music"})
    folder = config.paths.models_folder / "musicgen"
    folder.mkdir(parents=True)
    (folder / "tiny-musicgen").symlink_to(tiny_model, target_is_directory=True)
    write_instance(config, "music", {"type": "musicgen_binding", "default_model": "tiny-musicgen", "max_duration": 10})
    body = {"generation_type": "ttm", "input_data": [prompt("a calm piano tune")]}
    async with running_client(create_app(config)) as client:
        first = await client.post("/api/v1/generate", json={**body, "parameters": {"duration": 3, "seed": 7}})
        again = await client.post("/api/v1/generate", json={**body, "parameters": {"duration": 3, "seed": 7}})
        streamed = await client.post(
            "/api/v1/generate", json={**body, "stream": True, "parameters": {"duration": 2, "audio_format": "flac"}}
        )
        too_long = await client.post("/api/v1/generate", json={**body, "parameters": {"duration": 20}})
        listed = (await client.get("/api/v1/list_available_models/music")).json()["models"]
    assert first.status_code == 200, first.text
    [music] = first.json()["output"]
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(music["data"])))
    assert music["mime_type"] == "audio/wav" and rate == 16000 and len(samples) == 3 * 16000
    assert music["data"] == again.json()["output"][0]["data"]  # the same seed, the same music
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    progress = [event["metadata"]["step"] for event in events if event["type"] == "info"]
    assert progress and progress == sorted(progress) and events[-1]["content"][0]["mime_type"] == "audio/flac"
    assert too_long.status_code == 400 and "max_duration" in too_long.json()["detail"]
    assert [model["name"] for model in listed] == ["tiny-musicgen"]
