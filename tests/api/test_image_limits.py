"""A 9000x9000 image is 10 KB of PNG and 81 to 324 MB of pixels: refused from its header
(limits.max_input_image_pixels) before any binding decodes it, through every API and every binding that takes
images (openai_binding, gemini_binding and ollama_binding on loopback fakes of their APIs, diffusers_binding with
a tiny pipeline); and an image within the limit is decoded on a worker thread, while the event loop answers."""

from __future__ import annotations

import base64
import io
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.memory import peak_rss_growth
from tests.server import serving
from tests.zoo.gemini_server import FakeGemini
from tests.zoo.ollama_server import FakeOllama
from tests.zoo.ollama_server import create_app as fake_ollama
from tests.zoo.openai_fake_server import FakeOpenAI

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")

LIMIT = "limits.max_input_image_pixels"
HUGE = 9000
PROMPT = {"type": "text", "role": "user_prompt", "data": "look"}


def png(size: int, mode: str = "1") -> str:
    """A blank square PNG, base64 (9000x9000 in mode 1: 10 KB)."""
    buffer = io.BytesIO()
    Image.new(mode, (size, size), 0).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def huge() -> str:
    return png(HUGE)


def image_item(data: str, role: str = "input_image") -> dict[str, Any]:
    return {"type": "image", "role": role, "data": data, "mime_type": "image/png"}


@asynccontextmanager
async def image_backends(tmp_path: Path) -> AsyncIterator[tuple[Any, FakeOpenAI, FakeGemini, FakeOllama]]:
    """A config with openai_binding (oai), gemini_binding (gem) and ollama_binding (oll) on their fakes."""
    openai_fake, gemini_fake = FakeOpenAI(image_model_ids=("gpt-image-1",)), FakeGemini("gemini-key")
    ollama_fake = FakeOllama()
    async with (
        serving(openai_fake.app()) as openai_url,
        serving(gemini_fake.app()) as gemini_url,
        serving(fake_ollama(ollama_fake)) as ollama_url,
    ):
        instances = {
            "oai": {"type": "openai_binding", "base_url": f"{openai_url}/v1", "api_key": "sk-test", "max_retries": 0,
                    "default_model": "fake-vision-vl", "default_image_model": "gpt-image-1"},
            "gem": {"type": "gemini_binding", "base_url": gemini_url, "api_key": "gemini-key", "max_retries": 0},
            "oll": {"type": "ollama_binding", "host": ollama_url, "default_model": "llava:7b", "max_retries": 0},
        }  # fmt: skip
        config = make_config(
            tmp_path,
            bindings_map={name: values["type"] for name, values in instances.items()},
            defaults={"ttt_binding": "oai", "i2i_binding": "oai"},
        )
        for name, values in instances.items():
            write_instance(config, name, values)
        yield config, openai_fake, gemini_fake, ollama_fake


async def test_a_9000x9000_image_is_refused_from_its_header_everywhere(tmp_path: Path, huge: str) -> None:
    small = png(64)
    generate = "/api/v1/generate"
    requests: list[tuple[str, str, dict[str, Any] | None, dict[str, Any] | None]] = [
        ("openai edit, mask", generate,
         {"input_data": [PROMPT, image_item(small), image_item(huge, "mask_image")], "generation_type": "i2i"}, None),
        ("openai edit, image", generate, {"input_data": [PROMPT, image_item(huge)], "generation_type": "i2i"}, None),
        ("openai chat", generate, {"input_data": [PROMPT, image_item(huge)], "binding_name": "oai"}, None),
        ("gemini chat", generate, {"input_data": [PROMPT, image_item(huge)], "binding_name": "gem"}, None),
        ("ollama chat", generate, {"input_data": [PROMPT, image_item(huge)], "binding_name": "oll"}, None),
        ("/v1/chat/completions", "/v1/chat/completions",
         {"model": "oai/fake-vision-vl", "messages": [{"role": "user", "content": [
             {"type": "text", "text": "look"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{huge}"}}]}]}, None),
        ("/api/chat", "/api/chat",
         {"model": "oll/llava:7b", "stream": False,
          "messages": [{"role": "user", "content": "look", "images": [huge]}]}, None),
        ("/v1/messages", "/v1/messages",
         {"model": "gem/gemini-2.5-flash", "max_tokens": 16, "messages": [{"role": "user", "content": [
             {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": huge}},
             {"type": "text", "text": "look"}]}]}, None),
        ("/v1/images/edits, image", "/v1/images/edits", None,
         {"image": ("big.png", base64.b64decode(huge), "image/png")}),
        ("/v1/images/edits, mask", "/v1/images/edits", None,
         {"image": ("small.png", base64.b64decode(png(64, "RGBA")), "image/png"),
          "mask": ("mask.png", base64.b64decode(png(HUGE, "LA")), "image/png")}),
    ]  # fmt: skip
    async with image_backends(tmp_path) as (config, openai_fake, gemini_fake, ollama_fake):
        async with running_client(create_app(config)) as client:
            answers = []
            for name, path, body, files in requests:
                with peak_rss_growth() as peak:
                    if files is None:
                        answer = await client.post(path, json=body)
                    else:
                        answer = await client.post(path, data={"prompt": "look", "model": "oai"}, files=files)
                answers.append((name, answer, peak.mib))
        assert openai_fake.requests == [] and gemini_fake.count("generate") == 0 and ollama_fake.received() == []
    for name, answer, grown in answers:
        assert answer.status_code == 400, (name, answer.text[:300])
        assert f"is 9000x9000 = 81,000,000 pixels; the limit is 16,777,216 ({LIMIT})" in answer.text, (
            name,
            answer.text,
        )
        assert grown < 40, f"{name}: the server grew by {grown:.0f} MiB before refusing (the pixels are 81 MB)"


async def test_diffusers_instances_are_held_to_the_server_limit_too(tmp_path: Path, huge: str) -> None:
    """An instance that allows 100 MP of its own still gets nothing over the server's limit (asked for a 64x64
    output in two steps, so that a regression answers 200 at once rather than run the pipeline at 9000x9000)."""
    pytest.importorskip("diffusers", reason="install with ./run_tests.sh (the diffusers extra)")
    from tests.zoo.tiny_diffusion import build_tiny_pipeline

    config = make_config(tmp_path, bindings_map={"sd": "diffusers_binding"}, defaults={"i2i_binding": "sd"})
    folder = config.paths.models_folder / "diffusers_models"
    folder.mkdir(parents=True)
    build_tiny_pipeline(folder / "tiny-sd")
    write_instance(config, "sd", {"type": "diffusers_binding", "default_model": "tiny-sd", "num_threads": 1,
                                  "max_image_pixels": 100_000_000})  # fmt: skip
    async with running_client(create_app(config)) as client:
        with peak_rss_growth() as peak:
            answer = await client.post(
                "/api/v1/generate",
                json={"input_data": [PROMPT, image_item(huge)], "generation_type": "i2i",
                      "parameters": {"width": 64, "height": 64, "num_inference_steps": 2}},
            )  # fmt: skip
    assert answer.status_code == 400, answer.text[:300]
    assert f"the limit is 16,777,216 ({LIMIT})" in answer.json()["detail"]
    assert peak.mib < 40


def _running(frame: FrameType | None, function: str) -> bool:
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


class MaskWatch:
    """A thread that waits until some thread runs openai_binding's mask conversion (``openai_mask``), then asks
    the server's /health and records whether the answer came while the conversion still ran."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.done = threading.Event()  # set by the test once its request is answered
        self.converter: int | None = None  # the thread that ran the conversion
        self.health: int | None = None
        self.answered_during_conversion = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.converter is None and not self.done.is_set():
            self.converter = next(
                (ident for ident, frame in sys._current_frames().items() if _running(frame, "openai_mask")), None
            )
            time.sleep(0.0005)  # a poll of the other threads' state, not a wait for time to pass
        if self.converter is None:
            return
        self.health = httpx.get(f"{self.base_url}/health", timeout=600).status_code
        self.answered_during_conversion = _running(sys._current_frames().get(self.converter), "openai_mask")


async def test_the_event_loop_answers_while_an_allowed_mask_is_converted(tmp_path: Path) -> None:
    """4096x4096 (the limit, allowed): openai_binding converts the mask on a worker thread, and /health is
    answered meanwhile (before: the conversion ran on the event loop, which answered nothing until it ended)."""
    side = 4096
    items = [PROMPT, image_item(png(side, "RGB")), image_item(png(side, "L"), "mask_image")]
    async with image_backends(tmp_path) as (config, openai_fake, _, _):
        async with serving(create_app(config)) as base_url:
            watch = MaskWatch(base_url)
            async with httpx.AsyncClient(base_url=base_url, headers={"X-API-Key": TEST_API_KEY}, timeout=600) as client:
                answer = await client.post("/api/v1/generate", json={"input_data": items, "generation_type": "i2i"})
            watch.done.set()
            watch.thread.join()
    assert answer.status_code == 200, answer.text[:300]
    assert openai_fake.requests[0]["mask"]["size"] == (side, side)
    assert watch.converter is not None, "the mask conversion was never seen running"
    assert watch.health == 200 and watch.answered_during_conversion, "/health waited for the conversion to end"
    assert watch.converter != threading.get_ident(), "the mask was converted on the event loop's thread"
