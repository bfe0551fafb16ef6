"""openai_binding's image models through the real app, against a loopback server speaking OpenAI's images API
(JSON generations, multipart edits with a mask)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, write_instance
from tests.server import serving
from tests.zoo.key_echoes import leaks
from tests.zoo.openai_fake_server import FakeOpenAI

KEY = "sk-Img/Xw+Rt=Hk9Lm2Vb4Np6"
LIGHTHOUSE = {"type": "text", "role": "user_prompt", "data": "a lighthouse at dusk"}
IMAGE_MODELS = ("dall-e-3", "gpt-image-1")


def images_config(tmp_path: Path, base_url: str, **instance: Any):  # type: ignore[no-untyped-def]
    config = make_config(
        tmp_path,
        bindings_map={"oai": "openai_binding"},
        defaults={"ttt_binding": "oai", "tti_binding": "oai", "i2i_binding": "oai"},
    )
    values = {"type": "openai_binding", "base_url": base_url, "api_key": KEY, "max_retries": 1, "retry_backoff": 0.01}
    write_instance(config, "oai", {**values, **instance})
    return config


def png(image: Any) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def decoded(output: dict[str, Any]) -> Any:
    return Image.open(io.BytesIO(base64.b64decode(output["data"])))


async def test_text_to_image_maps_size_n_and_the_instance_settings(tmp_path: Path) -> None:
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS)
    async with serving(fake.app()) as url:
        config = images_config(tmp_path, f"{url}/v1", image_quality="hd", image_style="vivid")
        async with running_client(create_app(config)) as client:
            answer = await client.post(
                "/api/v1/generate",
                json={
                    "input_data": [LIGHTHOUSE],
                    "generation_type": "tti",
                    "model_name": "dall-e-3",
                    "parameters": {"image_size": "256x128", "n": 2},
                },
            )
            streamed = await client.post(
                "/api/v1/generate",
                json={"input_data": [LIGHTHOUSE], "generation_type": "tti", "model_name": "dall-e-3", "stream": True},
            )
            chat = await client.post("/api/v1/generate", json={"input_data": [LIGHTHOUSE], "model_name": "fake-text"})
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["output"]
    assert [output["type"] for output in outputs] == ["image", "image"]
    assert all(output["mime_type"] == "image/png" for output in outputs)
    assert [decoded(output).size for output in outputs] == [(256, 128), (256, 128)]
    assert outputs[0]["metadata"]["model"] == "dall-e-3"
    assert outputs[0]["metadata"]["revised_prompt"] == "A detailed rendering of a lighthouse at dusk"
    sent = fake.requests[0]
    assert sent["route"] == "generations" and sent["prompt"] == "a lighthouse at dusk" and sent["model"] == "dall-e-3"
    assert (sent["size"], sent["n"], sent["response_format"]) == ("256x128", 2, "b64_json")
    assert (sent["quality"], sent["style"]) == ("hd", "vivid")
    final = [json.loads(block[6:]) for block in streamed.text.split("\n\n") if block.startswith("data: ")][-1]
    assert final["type"] == "final" and final["content"][0]["type"] == "image"
    assert "size" not in fake.requests[1] and "n" not in fake.requests[1]  # the backend's defaults
    # The same instance still chats with its other models.
    assert chat.status_code == 200 and chat.json()["output"][0]["data"] == "Hello from the fake."


async def test_an_edit_sends_the_image_and_our_mask_as_openais_multipart(tmp_path: Path) -> None:
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS)
    picture = Image.new("RGB", (64, 48), (10, 120, 30))
    mask = Image.new("L", (64, 48), 0)
    mask.paste(255, (0, 0, 32, 48))  # white = repaint the left half
    items = [
        LIGHTHOUSE,
        {"type": "image", "role": "input_image", "data": png(picture), "mime_type": "image/png"},
        {"type": "image", "role": "mask_image", "data": png(mask), "mime_type": "image/png"},
    ]
    async with serving(fake.app()) as url:
        config = images_config(tmp_path, f"{url}/v1", default_model="gpt-image-1", image_style="natural")
        async with running_client(create_app(config)) as client:
            answer = await client.post("/api/v1/generate", json={"input_data": items, "generation_type": "i2i"})
            unmasked = await client.post(
                "/api/v1/generate",
                json={"input_data": items[:2], "generation_type": "i2i", "parameters": {"n": 2}},
            )
    assert answer.status_code == 200, answer.text
    [output] = answer.json()["output"]
    assert output["type"] == "image" and decoded(output).size == (64, 48)
    assert output["metadata"]["model"] == "gpt-image-1"
    sent = fake.requests[0]
    assert sent["route"] == "edits" and sent["prompt"] == "a lighthouse at dusk" and sent["model"] == "gpt-image-1"
    assert sent["image"] == {"size": (64, 48), "format": "PNG", "content_type": "image/png"}
    # Transparent (OpenAI: edit here) exactly where our mask was white.
    assert sent["mask"] == {"size": (64, 48), "transparent_box": (0, 0, 32, 48)}
    assert "response_format" not in sent and "style" not in sent  # gpt-image answers b64; edits have no style
    assert unmasked.status_code == 200 and len(unmasked.json()["output"]) == 2
    assert "mask" not in fake.requests[1] and fake.requests[1]["n"] == "2"


async def test_parameters_the_images_api_cannot_honour_are_400_naming_them(tmp_path: Path) -> None:
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS)
    async with serving(fake.app()) as url:
        config = images_config(tmp_path, f"{url}/v1", default_model="dall-e-3")
        async with running_client(create_app(config)) as client:
            answer = await client.post(
                "/api/v1/generate",
                json={
                    "input_data": [LIGHTHOUSE],
                    "generation_type": "tti",
                    "parameters": {"num_inference_steps": 20, "seed": 7, "n": 1},
                },
            )
    assert answer.status_code == 400
    assert "cannot honour num_inference_steps, seed" in answer.json()["detail"]
    assert fake.requests == []


async def test_a_refused_key_is_502_backend_unauthorized_without_the_backend_text(tmp_path: Path) -> None:
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS, fail_status=401)
    async with serving(fake.app()) as url:
        config = images_config(tmp_path, f"{url}/v1", default_model="dall-e-3")
        async with running_client(create_app(config)) as client:
            answer = await client.post("/api/v1/generate", json={"input_data": [LIGHTHOUSE], "generation_type": "tti"})
    assert answer.status_code == 502 and answer.json()["code"] == "backend_unauthorized"
    assert "fake failure" not in answer.text and not leaks(answer.text, KEY)
    assert fake.requests[-1]["route"] == "generations"


async def test_an_html_answer_is_502_naming_it(tmp_path: Path) -> None:
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS, wrong_answer="html")
    async with serving(fake.app()) as url:
        config = images_config(tmp_path, f"{url}/v1", default_model="dall-e-3")
        async with running_client(create_app(config)) as client:
            answer = await client.post("/api/v1/generate", json={"input_data": [LIGHTHOUSE], "generation_type": "tti"})
    assert answer.status_code == 502 and answer.json()["code"] == "backend_error"
    assert "text/html, not JSON" in answer.json()["detail"]


async def test_the_task_and_the_model_must_agree(tmp_path: Path) -> None:
    """A chat default gives tti its default_image_model; a task the model cannot do is a 400 before any call."""
    fake = FakeOpenAI(image_model_ids=IMAGE_MODELS)
    tti = {"input_data": [LIGHTHOUSE], "generation_type": "tti"}
    async with serving(fake.app()) as url:
        with_default = images_config(
            tmp_path / "a", f"{url}/v1", default_model="fake-text", default_image_model="dall-e-3"
        )
        async with running_client(create_app(with_default)) as client:
            drawn = await client.post("/api/v1/generate", json=tti)
            chatted = await client.post("/api/v1/generate", json={"input_data": [LIGHTHOUSE]})
            text_from_image_model = await client.post(
                "/api/v1/generate", json={"input_data": [LIGHTHOUSE], "model_name": "dall-e-3"}
            )
            image_from_chat_model = await client.post("/api/v1/generate", json={**tti, "model_name": "fake-text"})
        without_default = images_config(tmp_path / "b", f"{url}/v1", default_model="fake-text")
        async with running_client(create_app(without_default)) as client:
            undrawn = await client.post("/api/v1/generate", json=tti)
    assert drawn.status_code == 200 and drawn.json()["output"][0]["metadata"]["model"] == "dall-e-3"
    assert chatted.status_code == 200 and chatted.json()["output"][0]["data"] == "Hello from the fake."
    assert text_from_image_model.status_code == 400
    assert "makes images: use generation_type 'tti'" in text_from_image_model.json()["detail"]
    for refused in (image_from_chat_model, undrawn):
        assert refused.status_code == 400 and "does not make images" in refused.json()["detail"]
        assert "default_image_model" in refused.json()["detail"]
    assert [request.get("route", "chat") for request in fake.requests] == ["generations", "chat"]
