"""The diffusers binding with a tiny random-weight Stable Diffusion pipeline, through the real server."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, wait_until, write_instance
from tests.server import serving

pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
Image = pytest.importorskip("PIL.Image")

PROMPT = {"type": "text", "role": "user_prompt", "data": "a red cat"}
FAST = {"num_inference_steps": 4, "seed": 7}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("diffusion") / "tiny-sd")


def image_config(tmp_path: Path, tiny_model: Path, **instance: Any):  # type: ignore[no-untyped-def]
    config = make_config(
        tmp_path,
        bindings_map={"sd": "diffusers_binding"},
        defaults={"tti_binding": "sd", "i2i_binding": "sd"},
        limits={"max_inference_steps": 1000},  # the server's cap; each test sets the instance's own
    )
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    write_instance(
        config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1, **instance}
    )
    return config


def png(size: tuple[int, int] = (64, 64), mode: str = "RGB", color: Any = (200, 30, 30)) -> str:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def image_item(data: str, role: str = "input_image", mime: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "role": role, "data": data, "mime_type": mime}


def decoded(output: dict[str, Any]) -> Any:
    assert output["type"] == "image" and output["mime_type"] == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(output["data"])))


async def generate(
    client: httpx.AsyncClient, generation_type: str = "tti", *items: Any, **params: Any
) -> httpx.Response:
    body = {"input_data": [PROMPT, *items], "generation_type": generation_type, "parameters": {**FAST, **params}}
    return await client.post("/api/v1/generate", json=body)


async def test_text_to_image_same_seed_same_bytes(tmp_path: Path, tiny_model: Path) -> None:
    async with running_client(create_app(image_config(tmp_path, tiny_model))) as client:
        first = await generate(client, "tti", n=2)
        again = await generate(client, "tti", n=2)
        other = await generate(client, "tti", seed=9)
    assert first.status_code == 200, first.text
    outputs = first.json()["output"]
    assert len(outputs) == 2 and decoded(outputs[0]).size == (64, 64)
    assert outputs[0]["metadata"]["seed"] == 7 and outputs[1]["metadata"]["seed"] == 8
    assert outputs[0]["metadata"]["task"] == "text_to_image" and outputs[0]["metadata"]["model"] == "tiny-sd"
    # The same request gives the same PNG bytes; another seed gives another image.
    assert [output["data"] for output in again.json()["output"]] == [output["data"] for output in outputs]
    assert outputs[0]["data"] != outputs[1]["data"]
    assert other.json()["output"][0]["data"] not in (outputs[0]["data"], outputs[1]["data"])


async def test_image_to_image_and_inpainting_share_the_loaded_model(tmp_path: Path, tiny_model: Path) -> None:
    app = create_app(image_config(tmp_path, tiny_model))
    async with running_client(app) as client:
        source = png((96, 64))
        i2i = await generate(client, "i2i", image_item(source), strength=0.5)
        mask = png((96, 64), "L", 255)
        inpainted = await generate(client, "i2i", image_item(source), image_item(mask, "mask_image"), strength=1.0)
        sized = await generate(client, "tti", image_size="128x64")
        stats = app.state.resource_manager.models.stats()
    assert i2i.status_code == 200, i2i.text
    assert inpainted.status_code == 200, inpainted.text
    assert i2i.json()["output"][0]["metadata"]["task"] == "image_to_image"
    assert decoded(i2i.json()["output"][0]).size == (96, 64)
    assert inpainted.json()["output"][0]["metadata"]["task"] == "inpainting"
    assert decoded(inpainted.json()["output"][0]).size == (96, 64)
    assert decoded(sized.json()["output"][0]).size == (128, 64)
    assert stats.loads_total == 1  # three tasks, one load


async def test_streaming_reports_progress_before_the_image(tmp_path: Path, tiny_model: Path) -> None:
    async with running_client(create_app(image_config(tmp_path, tiny_model))) as client:
        body = {"input_data": [PROMPT], "generation_type": "tti", "stream": True, "parameters": FAST}
        response = await client.post("/api/v1/generate", json=body)
        plain = await generate(client)
    events = [json.loads(line[6:]) for line in response.text.split("\n\n") if line.startswith("data: ")]
    infos = [event for event in events if event["type"] == "info"]
    assert [info["content"] for info in infos] == [f"step {i} of 4" for i in range(1, 5)]
    assert events[-1]["type"] == "final"
    assert events[-1]["content"][0]["data"] == plain.json()["output"][0]["data"]


BAD_REQUESTS = [
    ("tti", [], {"num_inference_steps": 101}, "max_inference_steps"),
    ("tti", [], {"n": 5}, "max_images_per_request"),
    ("tti", [], {"width": 2048, "height": 1024}, "max_image_pixels"),
    ("tti", [], {"width": 100}, "width"),
    ("tti", [], {"image_size": "big"}, "image_size"),
    ("tti", [], {"strength": 1.5}, "strength"),
    ("tti", [], {"scheduler": "turbo"}, "scheduler"),
    ("i2i", [image_item(base64.b64encode(b"not an image").decode())], {}, "not an image"),
    ("i2i", [image_item("%%%")], {}, "base64"),
    ("i2i", [image_item(png(), mime="audio/wav")], {}, "mime_type"),
    ("i2i", [image_item(png((2048, 1024)))], {}, "max_image_pixels"),
    ("i2i", [image_item(png()), image_item(png((32, 32), "L", 255), "mask_image")], {}, "same size"),
    ("i2i", [image_item(png((64, 64), "L", 255), "mask_image")], {}, "role input_image"),
]


async def test_bad_inputs_are_400_naming_the_problem(tmp_path: Path, tiny_model: Path) -> None:
    app = create_app(image_config(tmp_path, tiny_model))
    async with running_client(app) as client:
        for generation_type, items, params, expected in BAD_REQUESTS:
            response = await generate(client, generation_type, *items, **params)
            assert response.status_code == 400, (params, response.text)
            assert expected in response.text, (expected, response.text)
        path = await client.post(
            "/api/v1/generate",
            json={"input_data": [PROMPT], "generation_type": "tti", "model_name": "../../etc", "parameters": FAST},
        )
        assert path.status_code == 400
        hub = await client.post(
            "/api/v1/generate",
            json={"input_data": [PROMPT], "generation_type": "tti", "model_name": "org/model", "parameters": FAST},
        )
        assert hub.status_code == 400 and "allow_download" in hub.text
        assert app.state.resource_manager.models.stats().loads_total == 0  # refused before anything loaded


async def test_disconnect_stops_denoising_and_frees_the_slot(tmp_path: Path, tiny_model: Path) -> None:
    app = create_app(image_config(tmp_path, tiny_model, max_inference_steps=900))
    headers = {"X-API-Key": TEST_API_KEY}
    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as client:
        body = {
            "input_data": [PROMPT],
            "generation_type": "tti",
            "stream": True,
            "parameters": {"num_inference_steps": 900},
        }
        steps_seen = 0
        async with client.stream("POST", "/api/v1/generate", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["type"] == "info":
                    steps_seen += 1
                if steps_seen == 3:
                    break  # leaving the block closes the connection
        binding = app.state.binding_manager.instances["sd"].binding
        (location,) = binding._loaded
        lock = binding._locks[location]
        await wait_until(lambda: app.state.resource_manager.stats().active == 0 and not lock.locked())
        # The worker thread has ended (the lock is released only after it): its step count is final.
        steps_run = binding._loaded[location].steps_run
        assert steps_run < 100, steps_run  # stopped within a few steps, not after 900
        after = await client.post(
            "/api/v1/generate", json={"input_data": [PROMPT], "generation_type": "tti", "parameters": FAST}
        )
        assert after.status_code == 200


async def test_unloading_frees_the_model(tmp_path: Path, tiny_model: Path) -> None:
    app = create_app(image_config(tmp_path, tiny_model, keep_alive=0))
    async with running_client(app) as client:
        assert (await generate(client)).status_code == 200
        residency = app.state.resource_manager.models
        await wait_until(lambda: residency.stats().loaded == 0)
        binding = app.state.binding_manager.instances["sd"].binding
        assert binding.loaded_models() == []
        assert (await generate(client)).status_code == 200  # loads again
        assert residency.stats().loads_total == 2
