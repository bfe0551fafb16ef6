"""diffusers_binding's text-to-video through the real server with a tiny random-weight TextToVideoSD pipeline
built in the test: an MP4 (H.264) with the asked frame count and frame rate, read back; GIF and WebM; progress
while streaming; the frame cap; an image model asked for a video."""

from __future__ import annotations

import base64
import io
import json
import tempfile
from pathlib import Path

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, prompt, write_instance

pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_diffusion import build_tiny_pipeline, build_tiny_video_pipeline

    root = tmp_path_factory.mktemp("video")
    build_tiny_video_pipeline(root / "tiny-video")
    build_tiny_pipeline(root / "tiny-sd")
    return root


def frames_of(data: bytes, suffix: str) -> tuple[int, float]:
    with tempfile.NamedTemporaryFile(suffix=suffix) as file:
        file.write(data)
        file.flush()
        return imageio_ffmpeg.count_frames_and_secs(file.name)


async def test_videos_of_the_asked_frames_in_three_containers(tmp_path: Path, tiny_models: Path) -> None:
    config = make_config(tmp_path, bindings_map={"sd": "diffusers_binding"}, defaults={"ttv_binding": "sd"})
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    for name in ("tiny-video", "tiny-sd"):
        (folder / name).symlink_to(tiny_models / name, target_is_directory=True)
    write_instance(
        config, "sd", {"type": "diffusers_binding", "default_model": "tiny-video", "num_threads": 1, "max_frames": 24}
    )
    body = {"generation_type": "ttv", "input_data": [prompt("a cat walking")]}
    fast = {"num_inference_steps": 2, "seed": 3}
    async with running_client(create_app(config)) as client:
        mp4 = await client.post("/api/v1/generate", json={**body, "parameters": {**fast, "num_frames": 16, "fps": 8}})
        gif = await client.post(
            "/api/v1/generate", json={**body, "parameters": {**fast, "num_frames": 6, "video_format": "gif"}}
        )
        webm = await client.post(
            "/api/v1/generate",
            json={**body, "stream": True, "parameters": {**fast, "num_frames": 4, "video_format": "webm"}},
        )
        too_many = await client.post("/api/v1/generate", json={**body, "parameters": {"num_frames": 100}})
        from_image_model = await client.post(
            "/api/v1/generate", json={**body, "model_name": "tiny-sd", "parameters": fast}
        )
    assert mp4.status_code == 200, mp4.text
    [video] = mp4.json()["output"]
    assert video["type"] == "video" and video["mime_type"] == "video/mp4"
    assert video["metadata"]["num_frames"] == 16 and video["metadata"]["seconds"] == 2.0
    assert frames_of(base64.b64decode(video["data"]), ".mp4") == (16, 2.0)
    animated = Image.open(io.BytesIO(base64.b64decode(gif.json()["output"][0]["data"])))
    assert animated.n_frames == 6 and animated.size == (64, 64)
    events = [json.loads(line[6:]) for line in webm.text.splitlines() if line.startswith("data: ")]
    assert [event["type"] for event in events] == ["info", "info", "final"]
    final = events[-1]["content"][0]
    assert final["mime_type"] == "video/webm" and frames_of(base64.b64decode(final["data"]), ".webm")[0] == 4
    assert too_many.status_code == 400 and "max_frames" in too_many.json()["detail"]
    assert from_image_model.status_code == 400 and "makes images" in from_image_model.json()["detail"]
