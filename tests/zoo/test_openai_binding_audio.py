"""openai_binding's speech: OpenAI's audio API (speech, transcriptions, translations) against a second
lollms_server on loopback, whose /v1/audio runs the offline models (hibari, whisper tiny.en)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config, prompt, write_instance
from tests.server import serving

pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("faster_whisper", reason="install with ./run_tests.sh (the speech extra)")
soundfile = pytest.importorskip("soundfile")


async def test_speech_and_transcription_through_the_openai_binding(tmp_path: Path) -> None:
    backend = make_config(
        tmp_path / "backend",
        bindings_map={"voice": "hibari_binding", "ears": "whisper_binding"},
        defaults={"tts_binding": "voice", "stt_binding": "ears"},
    )
    write_instance(backend, "voice", {"type": "hibari_binding"})
    write_instance(backend, "ears", {"type": "whisper_binding"})
    async with serving(create_app(backend)) as backend_url:
        relay = make_config(
            tmp_path / "relay",
            bindings_map={"oai": "openai_binding"},
            defaults={"tts_binding": "oai", "stt_binding": "oai"},
        )
        settings = {"type": "openai_binding", "base_url": f"{backend_url}/v1", "api_key": TEST_API_KEY}
        write_instance(
            relay, "oai", {**settings, "default_speech_model": "voice", "default_transcription_model": "ears"}
        )
        async with running_client(create_app(relay)) as client:
            spoken = await client.post(
                "/api/v1/generate",
                json={
                    "generation_type": "tts",
                    "input_data": [prompt("Good morning to you all.")],
                    "parameters": {"voice": "nova"},
                },
            )
            audio = spoken.json()["output"][0]
            heard = await client.post(
                "/api/v1/generate",
                json={
                    "generation_type": "stt",
                    "input_data": [
                        {"type": "audio", "role": "input_audio", "data": audio["data"], "mime_type": audio["mime_type"]}
                    ],
                    "parameters": {"timestamps": "word"},
                },
            )
            refused = await client.post(
                "/api/v1/generate",
                json={"generation_type": "tts", "input_data": [prompt("Hi.")], "parameters": {"sample_rate": 16000}},
            )
    assert spoken.status_code == 200, spoken.text
    assert audio["mime_type"] == "audio/wav" and audio["metadata"]["voice"] == "nova"
    assert soundfile.info(io.BytesIO(base64.b64decode(audio["data"]))).samplerate == 24000
    assert heard.status_code == 200, heard.text
    [text] = heard.json()["output"]
    assert re.findall(r"[a-z]+", text["data"].lower()) == ["good", "morning", "to", "you", "all"]
    assert text["metadata"]["language"] == "en" and text["metadata"]["segments"][0]["words"]
    assert refused.status_code == 400 and "sample_rate" in refused.json()["detail"]
