"""Speech through the server with the real offline models (hibari-tts speaks, faster-whisper tiny.en listens) and
the official openai SDK: /v1/audio/speech (formats, streaming), /v1/audio/transcriptions (every response
format, word timestamps), the round trip of a sentence, and bad audio refused."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from lollms_server.app import create_app
from tests.helpers import TEST_API_KEY, make_config, write_instance
from tests.server import serving

pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("faster_whisper", reason="install with ./run_tests.sh (the speech extra)")
soundfile = pytest.importorskip("soundfile")

SENTENCE = "The quick brown fox jumps over the lazy dog."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[openai.AsyncOpenAI]:
    config = make_config(
        tmp_path,
        bindings_map={"voice": "hibari_binding", "ears": "whisper_binding"},
        defaults={"tts_binding": "voice", "stt_binding": "ears"},
    )
    write_instance(config, "voice", {"type": "hibari_binding"})
    write_instance(config, "ears", {"type": "whisper_binding", "cpu_threads": 2})
    async with serving(create_app(config)) as url:
        async with openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=TEST_API_KEY, max_retries=0) as sdk:
            yield sdk


async def test_speech_then_transcription_round_trip(client: openai.AsyncOpenAI) -> None:
    speech = await client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="wav")
    audio = speech.read()
    samples, rate = soundfile.read(io.BytesIO(audio))
    assert rate == 24000 and 1.5 < len(samples) / rate < 6
    transcript = await client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", audio, "audio/wav"))
    assert words(transcript.text) == words(SENTENCE)


async def test_speech_formats_and_streaming(client: openai.AsyncOpenAI) -> None:
    two_sentences = "Good morning. The weather is fine today."
    for response_format, container in (("mp3", "MP3"), ("flac", "FLAC"), ("opus", "OGG")):
        speech = await client.audio.speech.create(
            model="voice", voice="heart", input=two_sentences, response_format=response_format, speed=1.2
        )
        assert soundfile.info(io.BytesIO(speech.read())).format == container
    async with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="nova", input=two_sentences, response_format="pcm"
    ) as streamed:
        pieces = [piece async for piece in streamed.iter_bytes()]
    assert streamed.headers["content-type"] == "audio/pcm"
    pcm = b"".join(pieces)
    assert len(pcm) % 2 == 0 and 2 < len(pcm) / 2 / 24000 < 8  # 16-bit samples at 24 kHz


async def test_transcription_formats_and_refusals(client: openai.AsyncOpenAI) -> None:
    audio = (
        await client.audio.speech.create(model="tts-1", voice="alloy", input=SENTENCE, response_format="wav")
    ).read()
    upload = ("speech.wav", audio, "audio/wav")
    verbose = await client.audio.transcriptions.create(
        model="ears", file=upload, response_format="verbose_json", timestamp_granularities=["word", "segment"]
    )
    srt = await client.audio.transcriptions.create(model="whisper-1", file=upload, response_format="srt")
    vtt = await client.audio.transcriptions.create(model="whisper-1", file=upload, response_format="vtt")
    text = await client.audio.transcriptions.create(model="whisper-1", file=upload, response_format="text")
    assert verbose.language == "en" and verbose.duration and 2 < verbose.duration < 6
    assert verbose.words and [word.word.strip(" .").lower() for word in verbose.words][:3] == ["the", "quick", "brown"]
    assert verbose.segments and verbose.segments[0].start == 0.0
    assert str(srt).startswith("1\n00:00:00,000 --> ") and str(vtt).startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert words(str(text)) == words(SENTENCE)
    with pytest.raises(openai.BadRequestError, match="not audio this server can read"):
        await client.audio.transcriptions.create(model="whisper-1", file=("notes.txt", b"just text", "text/plain"))
    with pytest.raises(openai.BadRequestError, match="English-only"), pytest.warns(DeprecationWarning):
        await client.audio.translations.create(model="whisper-1", file=upload)  # deprecated by the SDK, still served
    with pytest.raises(openai.BadRequestError, match="aac"):
        await client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="aac")


async def test_lollms_client_speaks_and_lists_voices(client: openai.AsyncOpenAI) -> None:
    from lollms_client import LollmsClient

    server = str(client.base_url).removesuffix("/").removesuffix("/v1")

    def use_lollms_client() -> tuple[bytes, list[dict[str, str]]]:
        lollms = LollmsClient(
            llm_binding_name="lollms",
            llm_binding_config={"host_address": server, "model_name": "voice", "service_key": TEST_API_KEY},
        )
        return lollms.llm.tts_generate(SENTENCE, voice="alloy", response_format="wav"), lollms.llm.tts_list_voices()

    audio, voices = await asyncio.to_thread(use_lollms_client)
    assert soundfile.info(io.BytesIO(audio)).format == "WAV"
    assert {"id": "heart", "name": "heart"} in voices
