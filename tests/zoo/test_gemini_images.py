"""gemini_binding's image output through the HTTP API, against the loopback Gemini server (gemini_server.py)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import prompt
from tests.zoo.gemini_server import IMAGE_SIDE, png
from tests.zoo.test_gemini_binding import gemini_client, generate, parse_sse

pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")
Image = pytest.importorskip("PIL.Image", reason="the fake Gemini draws its images with pillow")

IMAGE_MODEL = "gemini-2.5-flash-image"
TTI = {"generation_type": "tti", "binding_name": "gemini", "model_name": IMAGE_MODEL}


def picture(output: dict[str, Any]) -> Any:
    assert output["type"] == "image" and output["mime_type"] == "image/png"
    return Image.open(io.BytesIO(base64.b64decode(output["data"])))


async def test_text_to_image_answers_text_and_image(tmp_path: Path) -> None:
    parameters = {"image_size": "1280x720", "seed": 11}
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, [prompt("a red fox")], parameters=parameters, **TTI)
    assert response.status_code == 200, response.text
    text, image = response.json()["output"]
    assert text["type"] == "text" and text["data"] == "Echo: a red fox"
    assert text["metadata"]["model"] == IMAGE_MODEL and text["metadata"]["finish_reason"] == "stop"
    assert picture(image).size == (IMAGE_SIDE, 18)  # 16:9
    assert base64.b64decode(image["data"]) == png("a red fox", "16:9")
    assert image["metadata"] == {"model": IMAGE_MODEL, "index": 0}
    config = fake.last("generate").body["generationConfig"]
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"} and config["seed"] == 11


async def test_text_model_answers_text_only_and_image_model_without_size(tmp_path: Path) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        text_only = await generate(client, [prompt("hello")])
        plain_config = fake.last("generate").body["generationConfig"]
        square = await generate(client, [prompt("a blue square")], **TTI)
        square_config = fake.last("generate").body["generationConfig"]
    assert [output["type"] for output in text_only.json()["output"]] == ["text"]
    assert "responseModalities" not in plain_config and "imageConfig" not in plain_config
    assert picture(square.json()["output"][1]).size == (IMAGE_SIDE, IMAGE_SIDE)
    assert square_config["responseModalities"] == ["TEXT", "IMAGE"] and "imageConfig" not in square_config


async def test_streamed_image_comes_in_the_final_outputs(tmp_path: Path) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, [prompt("a green hill")], stream=True, **TTI)
    assert response.status_code == 200, response.text
    events = parse_sse(response.text)
    chunks = [event["content"] for event in events if event["type"] == "chunk"]
    final = events[-1]
    assert "".join(chunks) == "Echo: a green hill" and final["type"] == "final"
    text, image = final["content"]
    assert text["data"] == "Echo: a green hill" and text["metadata"]["usage"]["completion_tokens"] == 4
    assert base64.b64decode(image["data"]) == png("a green hill", None)
    assert fake.count("stream") == 1


async def test_image_to_image_sends_the_image_inline(tmp_path: Path) -> None:
    source = base64.b64encode(png("source", "1:1")).decode("ascii")
    items = [prompt("make it blue"), {"type": "image", "role": "input_image", "data": source, "mime_type": "image/png"}]
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, items, **{**TTI, "generation_type": "i2i"})
        masked = await generate(
            client,
            [*items, {"type": "image", "role": "mask_image", "data": source, "mime_type": "image/png"}],
            **{**TTI, "generation_type": "i2i"},
        )
    assert response.status_code == 200, response.text
    text, image = response.json()["output"]
    assert text["data"] == "Echo: make it blue [1 image]" and picture(image).size == (IMAGE_SIDE, IMAGE_SIDE)
    sent = fake.last("generate").body["contents"][-1]["parts"][0]
    assert base64.urlsafe_b64decode(sent["inlineData"]["data"]) == png("source", "1:1")  # the SDK's alphabet
    assert masked.status_code == 400 and "mask_image" in masked.json()["detail"]


@pytest.mark.parametrize(
    ("model", "parameters", "named"),
    [
        (IMAGE_MODEL, {"negative_prompt": "fog", "guidance_scale": 5.0}, "negative_prompt, guidance_scale"),
        (IMAGE_MODEL, {"n": 2}, "cannot honour n"),
        (IMAGE_MODEL, {"num_inference_steps": 20, "scheduler": "ddim"}, "num_inference_steps, scheduler"),
        (IMAGE_MODEL, {"width": 1000, "height": 200}, "aspect ratio 5:1"),
        ("gemini-2.5-flash", {"width": 512, "height": 512}, "does not generate images"),
        ("imagen-4.0-generate-001", {"seed": 3, "negative_prompt": "fog"}, "cannot honour negative_prompt, seed"),
        ("imagen-4.0-generate-001", {"width": 1000, "height": 200}, "Imagen make 1:1, 3:4"),
    ],
)
async def test_what_the_backend_cannot_honour_is_refused(
    tmp_path: Path, model: str, parameters: dict[str, Any], named: str
) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, [prompt("a cat")], parameters=parameters, **{**TTI, "model_name": model})
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]
    assert fake.count("generate") == 0 and fake.count("stream") == 0 and fake.count("predict") == 0


IMAGEN = "imagen-4.0-generate-001"


async def test_imagen_makes_images_through_predict(tmp_path: Path) -> None:
    parameters = {"n": 2, "image_size": "1024x576"}
    async with gemini_client(tmp_path) as (client, fake):
        response = await generate(client, [prompt("a red fox")], parameters=parameters, **{**TTI, "model_name": IMAGEN})
        call = fake.last("predict")
        streamed = await generate(client, [prompt("a red fox")], stream=True, **{**TTI, "model_name": IMAGEN})
    assert response.status_code == 200, response.text
    images = response.json()["output"]
    assert [base64.b64decode(image["data"]) for image in images] == [png(f"a red fox #{i}", "16:9") for i in (0, 1)]
    assert [image["metadata"] for image in images] == [{"model": IMAGEN, "index": 0}, {"model": IMAGEN, "index": 1}]
    assert call.with_key and call.body == {
        "instances": [{"prompt": "a red fox"}],
        "parameters": {"sampleCount": 2, "aspectRatio": "16:9"},
    }
    final = parse_sse(streamed.text)[-1]
    assert final["type"] == "final" and base64.b64decode(final["content"][0]["data"]) == png("a red fox #0", None)


async def test_imagen_and_text_models_refuse_what_they_cannot_make(tmp_path: Path) -> None:
    async with gemini_client(tmp_path) as (client, fake):
        text_from_imagen = await generate(client, [prompt("hello")], model_name=IMAGEN)
        image_from_text_model = await generate(client, [prompt("a cat")], **{**TTI, "model_name": "gemini-2.5-flash"})
        filtered = await generate(client, [prompt("something forbidden")], **{**TTI, "model_name": IMAGEN})
    assert text_from_imagen.status_code == 400 and "generation_type 'tti'" in text_from_imagen.json()["detail"]
    assert image_from_text_model.status_code == 400
    assert "does not generate images" in image_from_text_model.json()["detail"]
    assert filtered.status_code == 400 and "Imagen made no image" in filtered.json()["detail"]
    assert "safety filter blocked the prompt" in filtered.json()["detail"]
    assert fake.count("predict") == 1 and fake.count("generate") == 0
