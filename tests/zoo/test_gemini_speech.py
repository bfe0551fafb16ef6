"""gemini_binding's speech against the loopback Gemini server: a TTS model's raw PCM answer encoded as asked (and
OpenAI's voice names mapped to Gemini's), and transcription by sending the audio with an instruction."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from tests.helpers import prompt
from tests.zoo.gemini_server import proto_field
from tests.zoo.test_gemini_binding import gemini_client, generate

pytest.importorskip("google.genai", reason="gemini_binding needs google-genai")
soundfile = pytest.importorskip("soundfile")

TTS = "gemini-2.5-flash-preview-tts"


async def test_gemini_speaks_and_listens(tmp_path: Path) -> None:
    speak = {"generation_type": "tts", "binding_name": "gemini", "model_name": TTS}
    async with gemini_client(tmp_path) as (client, fake):
        spoken = await generate(
            client, [prompt("one two three four")], parameters={"voice": "nova", "audio_format": "flac"}, **speak
        )
        sent = fake.last("generate").body
        wav = await generate(client, [prompt("hello")], **speak)
        audio = wav.json()["output"][0]
        heard = await generate(
            client,
            [{"type": "audio", "role": "input_audio", "data": audio["data"], "mime_type": audio["mime_type"]}],
            generation_type="stt",
            binding_name="gemini",
        )
        listened = fake.last("generate").body["contents"][0]["parts"]
        chat_model = await generate(client, [prompt("hi")], generation_type="tts", binding_name="gemini")
        speed = await generate(client, [prompt("hi")], parameters={"speed": 1.5}, **speak)
    assert spoken.status_code == 200, spoken.text
    [output] = spoken.json()["output"]
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(output["data"])))
    assert output["mime_type"] == "audio/flac" and rate == 24000 and len(samples) == 24000 * 4 // 10
    config = sent["generationConfig"]
    assert config["responseModalities"] == ["AUDIO"]
    voice = proto_field(proto_field(proto_field(config, "speechConfig"), "voiceConfig"), "prebuiltVoiceConfig")
    assert proto_field(voice, "voiceName") == "Kore"  # OpenAI's "nova"
    assert heard.status_code == 200, heard.text
    assert heard.json()["output"][0]["data"].startswith("Echo: Generate a verbatim transcript")
    assert heard.json()["output"][0]["data"].endswith("[1 audio]")
    assert proto_field(proto_field(listened[0], "inlineData"), "mimeType") == "audio/wav"
    assert chat_model.status_code == 400 and "does not speak" in chat_model.json()["detail"]
    assert speed.status_code == 400 and "speed" in speed.json()["detail"]
