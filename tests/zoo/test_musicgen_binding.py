"""musicgen_binding through the real server with a tiny random-weight MusicGen built in the test: WAV of the asked
duration, the same seed the same audio, progress while streaming, and the duration cap."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, prompt, wait_until, write_instance
from tests.server import serving

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


async def test_a_disconnect_stops_composing_and_frees_the_slot(tmp_path: Path, tiny_model: Path) -> None:
    config = make_config(tmp_path, bindings_map={"music": "musicgen_binding"}, defaults={"ttm_binding": "music"})
    folder = config.paths.models_folder / "musicgen"
    folder.mkdir(parents=True)
    (folder / "tiny-musicgen").symlink_to(tiny_model, target_is_directory=True)
    write_instance(config, "music", {"type": "musicgen_binding", "default_model": "tiny-musicgen", "max_duration": 300})
    app = create_app(config)
    body = {
        "generation_type": "ttm",
        "input_data": [prompt("a long song")],
        "stream": True,
        "parameters": {"duration": 300},
    }
    async with (
        serving(app) as url,
        httpx.AsyncClient(base_url=url, headers={"X-API-Key": TEST_API_KEY}, timeout=300) as client,
    ):
        async with client.stream("POST", "/api/v1/generate", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["type"] == "info":
                    break  # the first progress event: leaving the block closes the connection
        binding = app.state.binding_manager.instances["music"].binding
        lock = binding._loaded.lock("tiny-musicgen")
        await wait_until(lambda: app.state.resource_manager.stats().active == 0 and not lock.locked())
        # The worker has ended (the lock is released only after it): its step count is final.
        assert binding.steps_run < 7504 // 2, binding.steps_run  # 300 s is 7,504 steps: it stopped early
        after = await client.post("/api/v1/generate", json={**body, "stream": False, "parameters": {"duration": 1}})
        assert after.status_code == 200
