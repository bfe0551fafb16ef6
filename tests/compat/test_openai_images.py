"""OpenAI's images API (/v1/images/generations, /v1/images/edits) over the diffusers binding on a tiny random-weight
pipeline, through the official openai SDK (JSON generations, multipart edits as the SDK sends them)."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, lifespan, make_config, write_instance

pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
Image = pytest.importorskip("PIL.Image")
ImageOps = pytest.importorskip("PIL.ImageOps")

FAST: dict[str, Any] = {"num_inference_steps": 2, "seed": 7}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("diffusion") / "tiny-sd")


def tiny_sd_config(tmp_path: Path, tiny_model: Path):  # type: ignore[no-untyped-def]
    """A server config with the diffusers instance 'sd' on the tiny pipeline (tti and i2i default)."""
    config = make_config(
        tmp_path, bindings_map={"sd": "diffusers_binding"}, defaults={"tti_binding": "sd", "i2i_binding": "sd"}
    )
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    (folder / "tiny-sd").symlink_to(tiny_model, target_is_directory=True)
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1})
    return config


@pytest.fixture
async def http(tmp_path: Path, tiny_model: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app (diffusers instance 'sd' on the tiny pipeline) over ASGI, for the SDK and for our own API."""
    config = tiny_sd_config(tmp_path, tiny_model)
    async with lifespan(create_app(config)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url="http://test/v1", api_key=TEST_API_KEY, http_client=http, max_retries=0)


def png_of(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_bytes(size: tuple[int, int], mode: str = "RGB", color: Any = (200, 30, 30)) -> bytes:
    return png_of(Image.new(mode, size, color))


def decoded(b64: str | None) -> Any:
    assert b64 is not None
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    assert image.format == "PNG"
    return image


async def test_generate_answers_b64_json_images_of_the_asked_size(client: openai.AsyncOpenAI) -> None:
    result = await client.images.generate(prompt="a red cat", model="sd/tiny-sd", n=2, size="128x64", extra_body=FAST)
    default = await client.images.generate(prompt="a red cat", size="auto", extra_body=FAST)
    assert len(result.data) == 2 and result.created > 0
    first, second = (decoded(image.b64_json) for image in result.data)
    assert first.size == second.size == (128, 64)
    assert result.data[0].b64_json != result.data[1].b64_json  # seeds 7 and 8
    assert result.data[0].url is None
    assert len(default.data) == 1 and decoded(default.data[0].b64_json).size == (64, 64)  # the binding's size


async def test_edit_with_a_mask_is_our_inpainting_with_the_mask_inverted(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    source = png_bytes((64, 64))
    # OpenAI's convention: transparent pixels (the left half) are the area to edit ...
    mask = Image.new("RGBA", (64, 64), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 32, 64))
    # ... ours (and diffusers'): white is the area to repaint.
    ours = Image.new("L", (64, 64), 0)
    ours.paste(255, (0, 0, 32, 64))
    edited = await client.images.edit(
        image=("cat.png", source, "image/png"),
        mask=("mask.png", png_of(mask), "image/png"),
        prompt="a blue cat",
        model="sd",
        response_format="b64_json",
        extra_body={**FAST, "strength": 1.0},
    )
    reworked = await client.images.edit(
        image=("cat.png", source, "image/png"), prompt="a blue cat", extra_body={**FAST, "strength": 1.0}
    )
    expected = [await inpainting(http, source, png_of(mask)) for mask in (ours, ImageOps.invert(ours))]
    assert decoded(edited.data[0].b64_json).size == (64, 64)
    assert edited.data[0].b64_json == expected[0]
    assert edited.data[0].b64_json != expected[1]
    assert reworked.data[0].b64_json not in expected  # no mask: image-to-image


async def inpainting(http: httpx.AsyncClient, source: bytes, mask: bytes) -> str:
    items = [
        {"type": "text", "role": "user_prompt", "data": "a blue cat"},
        {"type": "image", "role": "input_image", "data": base64.b64encode(source).decode(), "mime_type": "image/png"},
        {"type": "image", "role": "mask_image", "data": base64.b64encode(mask).decode(), "mime_type": "image/png"},
    ]
    body = {"input_data": items, "generation_type": "i2i", "parameters": {**FAST, "strength": 1.0}}
    response = await http.post("/api/v1/generate", json=body, headers={"X-API-Key": TEST_API_KEY})
    assert response.status_code == 200, response.text
    return str(response.json()["output"][0]["data"])


async def test_url_answers_are_stored_artifacts_served_with_the_key(
    client: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    stored = await client.images.generate(prompt="a red cat", response_format="url", extra_body=FAST)
    inline = await client.images.generate(prompt="a red cat", extra_body=FAST)
    edited = await client.images.edit(
        image=("cat.png", png_bytes((64, 64)), "image/png"), prompt="x", response_format="url", extra_body=FAST
    )
    url = stored.data[0].url
    # A path on this server (server.public_url is not set): never an address taken from the request's Host.
    assert url is not None and url.startswith("/api/v1/artifacts/") and stored.data[0].b64_json is None
    fetched = await http.get(url, headers={"X-API-Key": TEST_API_KEY})
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    assert fetched.content == base64.b64decode(inline.data[0].b64_json or "")  # same seed, same PNG
    assert (await http.get(url)).status_code in (401, 403)
    assert (edited.data[0].url or "").startswith("/api/v1/artifacts/")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"style": "vivid"}, "style is not supported"),
        ({"quality": "hd"}, "quality is not supported"),
        ({"background": "transparent"}, "background 'transparent'"),
        ({"output_format": "jpeg"}, "PNG images only"),
        ({"output_compression": 50}, "output_compression"),
        ({"response_format": "jpeg"}, "response_format must be 'b64_json' or 'url'"),
        ({"size": "100x100"}, "image_size"),
        ({"n": 9}, "max_images_per_request"),
    ],
)
async def test_generate_refuses_what_it_cannot_honour(
    client: openai.AsyncOpenAI, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await client.images.generate(prompt="a cat", extra_body=FAST, **fields)
    assert message in refused.value.message
    assert refused.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_edit_refusals_and_bad_masks_are_openai_errors(client: openai.AsyncOpenAI) -> None:
    image = ("cat.png", png_bytes((64, 64)), "image/png")
    with pytest.raises(openai.BadRequestError, match="send one image per request"):
        await client.images.edit(image=[image, image], prompt="x", extra_body=FAST)
    with pytest.raises(openai.BadRequestError, match="alpha channel"):
        await client.images.edit(image=image, mask=("m.png", png_bytes((64, 64), "L", 0)), prompt="x")
    with pytest.raises(openai.BadRequestError, match="input_fidelity"):
        await client.images.edit(image=image, prompt="x", input_fidelity="high")
    with pytest.raises(openai.BadRequestError, match="same size"):
        mask = png_bytes((32, 32), "RGBA", (0, 0, 0, 0))
        await client.images.edit(image=image, mask=("m.png", mask), prompt="x", extra_body=FAST)
    with pytest.raises(openai.UnprocessableEntityError):
        await client.images.edit(image=image, prompt="x", n="many")  # type: ignore[arg-type]


async def test_unknown_models_are_not_found(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="model 'dall-e-3' not found"):
        await client.images.generate(prompt="a cat", model="dall-e-3")
    with pytest.raises(openai.NotFoundError):
        await client.images.edit(image=("a.png", png_bytes((64, 64))), prompt="a cat", model="nope/x")


async def test_openapi_documents_the_multipart_edit_and_openai_errors(http: httpx.AsyncClient) -> None:
    schema = (await http.get("/openapi.json")).json()
    edit = schema["paths"]["/v1/images/edits"]["post"]
    form = edit["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["properties"]["image"]["format"] == "binary" and form["required"] == ["image", "prompt"]
    assert "mask" in form["properties"] and "response_format" in form["properties"]
    for operation in (edit, schema["paths"]["/v1/images/generations"]["post"]):
        refs = {
            status: body["content"]["application/json"]["schema"]["$ref"]
            for status, body in operation["responses"].items()
            if status != "200"
        }
        assert {"400", "404", "413", "422", "503"} <= set(refs)
        assert {ref.rsplit("/", 1)[-1] for ref in refs.values()} == {"OpenAIErrorResponse"}


async def test_lollms_client_lists_image_models_and_draws(tmp_path: Path, tiny_model: Path) -> None:
    """lollms_client's lollms TTI binding: capabilities, its model list by kind, and generate_image (through
    /v1/images/generations) against the real server with the tiny pipeline."""
    from lollms_client import LollmsClient

    from tests.server import serving

    config = tiny_sd_config(tmp_path, tiny_model)
    async with serving(create_app(config)) as url:

        def use_lollms_client() -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
            client = LollmsClient(
                llm_binding_name=None,
                tti_binding_name="lollms",
                tti_binding_config={"host_address": url, "model_name": "sd/tiny-sd", "service_key": TEST_API_KEY},
            )
            tti = client.tti
            image = tti.generate_image("a red fox", width=64, height=64, num_inference_steps=2, seed=3)
            return tti.get_capabilities(), tti.list_models_by_type("tti"), image

        capabilities, models, image = await asyncio.to_thread(use_lollms_client)
    assert capabilities["active_bindings"] == {"tti": "sd", "i2i": "sd"}
    assert "sd/tiny-sd" in {model["id"] for model in models}
    assert Image.open(io.BytesIO(image)).size == (64, 64)
