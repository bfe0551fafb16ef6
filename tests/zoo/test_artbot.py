"""artbot end to end: a text answer and a generated image in one response, streaming and not; its image is a
request of its own (parameters checked, the task's default binding, a compute slot)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import add_scripted_binding, make_config, prompt, write_instance

pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
Image = pytest.importorskip("PIL.Image")

IMAGE = {"num_inference_steps": 3, "seed": 11, "image_size": "64x64"}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("diffusion") / "tiny-sd")


def artbot_config(tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    config = make_config(
        tmp_path,
        bindings_map={"scripted": "scripted_binding", "sd": "diffusers_binding"},
        defaults={"ttt_binding": "scripted", "tti_binding": "sd"},
    )
    add_scripted_binding(config, default_model="model-a")
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1})
    return config


def decoded(output: dict) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(output["data"]))).size  # type: ignore[no-any-return]


async def test_artbot_answers_with_text_and_an_image_in_both_modes(tmp_path: Path, tiny_model: Path) -> None:
    app = create_app(artbot_config(tmp_path, tiny_model))
    body = {"input_data": [prompt("a lighthouse at dawn")], "personality": "artbot", "parameters": {"image": IMAGE}}
    async with running_client(app) as client:
        answer = await client.post("/api/v1/generate", json=body)
        admitted_after_one = app.state.resource_manager.stats().admitted_total
        streamed = await client.post("/api/v1/generate", json={**body, "stream": True})
        refused = await client.post(
            "/api/v1/generate", json={**body, "parameters": {"image": {"num_inference_steps": 10_000}}}
        )
    outputs = answer.json()["output"]
    assert answer.status_code == 200, answer.text
    assert [output["type"] for output in outputs] == ["text", "image"]
    assert outputs[1]["mime_type"] == "image/png" and decoded(outputs[1]) == (64, 64)
    assert outputs[1]["metadata"]["prompt_used"] == outputs[0]["metadata"]["image_prompt"]
    assert admitted_after_one >= 1  # the image took a compute slot, like any tti request
    events = [json.loads(line[6:]) for line in streamed.text.split("\n\n") if line.startswith("data: ")]
    final = events[-1]["content"]
    assert [output["type"] for output in final] == ["text", "image"]
    assert final[1]["data"] == outputs[1]["data"]  # same seed, same image
    # Parameters of the image request are checked like /generate's: the refusal becomes an error output.
    refused_outputs = refused.json()["output"]
    assert refused_outputs[-1]["type"] == "error" and "max_inference_steps" in refused_outputs[-1]["data"]
