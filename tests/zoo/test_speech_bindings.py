"""hibari_binding and whisper_binding through /api/v1/generate: speech parameters checked, streamed sentences,
the same seed the same audio, and audio refused before any work when it is empty, not audio or too long."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import add_scripted_binding, make_config, prompt, scripted_calls, write_instance

pytest.importorskip("hibari", reason="install with ./run_tests.sh (the speech extra)")
pytest.importorskip("faster_whisper", reason="install with ./run_tests.sh (the speech extra)")
soundfile = pytest.importorskip("soundfile")
numpy = pytest.importorskip("numpy")


def speech_config(tmp_path: Path, **whisper: Any):  # type: ignore[no-untyped-def]
    config = make_config(
        tmp_path,
        bindings_map={"voice": "hibari_binding", "ears": "whisper_binding"},
        defaults={"tts_binding": "voice", "stt_binding": "ears"},
    )
    write_instance(config, "voice", {"type": "hibari_binding"})
    write_instance(config, "ears", {"type": "whisper_binding", **whisper})
    return config


def wav_b64(seconds: float, rate: int = 16000) -> str:
    buffer = io.BytesIO()
    soundfile.write(buffer, numpy.zeros(int(seconds * rate), dtype="float32"), rate, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode()


def audio_item(data: str, mime: str | None = "audio/wav") -> dict[str, Any]:
    return {"type": "audio", "role": "input_audio", "data": data, "mime_type": mime}


async def test_speech_parameters_streaming_and_seeds(tmp_path: Path) -> None:
    text = [prompt("First sentence here. And a second one.")]
    async with running_client(create_app(speech_config(tmp_path))) as client:

        async def speak(**body: Any) -> Any:
            return await client.post("/api/v1/generate", json={"generation_type": "tts", "input_data": text, **body})

        once = await speak(parameters={"seed": 5, "sample_rate": 16000})
        again = await speak(parameters={"seed": 5, "sample_rate": 16000})
        streamed = await speak(stream=True, parameters={"audio_format": "mp3"})
        unknown = await speak(parameters={"pitch": 2})
        too_fast = await speak(parameters={"speed": 9})
        empty = await client.post("/api/v1/generate", json={"generation_type": "tts", "input_data": [prompt(" ")]})
    assert once.status_code == 200, once.text
    [audio] = once.json()["output"]
    assert audio["data"] == again.json()["output"][0]["data"]  # the same seed, the same bytes
    samples, rate = soundfile.read(io.BytesIO(base64.b64decode(audio["data"])))
    assert rate == 16000 and audio["metadata"]["seconds"] == pytest.approx(len(samples) / rate, abs=0.01)
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    pieces = [event["content"] for event in events if event["type"] == "chunk"]
    assert len(pieces) == 2 and all(piece["mime_type"] == "audio/mpeg" for piece in pieces)
    assert events[-1]["type"] == "final" and events[-1]["content"][0]["type"] == "audio"
    assert unknown.status_code == 400 and "pitch" in unknown.json()["detail"]
    assert too_fast.status_code == 400 and "speed" in too_fast.json()["detail"]
    assert empty.status_code == 400


async def test_bad_audio_is_refused_before_transcribing(tmp_path: Path) -> None:
    async with running_client(create_app(speech_config(tmp_path, max_audio_seconds=2))) as client:

        async def transcribe(*items: dict[str, Any]) -> Any:
            return await client.post("/api/v1/generate", json={"generation_type": "stt", "input_data": list(items)})

        too_long = await transcribe(audio_item(wav_b64(3.0)))
        empty = await transcribe(audio_item(""))
        not_audio = await transcribe(audio_item(base64.b64encode(b"%PDF-1.7 not audio").decode(), "audio/wav"))
        wrong_type = await transcribe(audio_item(wav_b64(1.0), "image/png"))
        missing = await client.post("/api/v1/generate", json={"generation_type": "stt", "input_data": [prompt("x")]})
        silence = await transcribe(audio_item(wav_b64(1.0)))
    assert too_long.status_code == 400 and "max_audio_seconds" in too_long.json()["detail"]
    assert empty.status_code == 400
    assert not_audio.status_code == 400 and "not audio" in not_audio.json()["detail"]
    assert wrong_type.status_code == 400 and "image/png" in wrong_type.json()["detail"]
    assert missing.status_code == 400 and "input_audio" in missing.json()["detail"]
    assert silence.status_code == 200 and silence.json()["output"][0]["metadata"]["duration"] == pytest.approx(1.0)


async def test_voice_assistant_hears_answers_and_speaks(tmp_path: Path) -> None:
    """Speech to text, the text model (scripted here), text to speech: one request, three pipeline steps."""
    config = speech_config(tmp_path)
    add_scripted_binding(config, "text", default_model="model-a")
    config.values["bindings_map"]["text"] = "scripted_binding"
    config.values["defaults"]["ttt_binding"] = "text"
    async with running_client(create_app(config)) as client:
        spoken = await client.post(
            "/api/v1/generate",
            json={
                "generation_type": "tts",
                "input_data": [prompt("What time is it in Paris?")],
                "parameters": {"seed": 1},
            },
        )
        question = audio_item(spoken.json()["output"][0]["data"])
        body = {"personality": "voice_assistant", "input_data": [question], "parameters": {"voice": {"voice": "nova"}}}
        answer = await client.post("/api/v1/generate", json=body)
        streamed = await client.post("/api/v1/generate", json={**body, "stream": True})
    assert answer.status_code == 200, answer.text
    outputs = answer.json()["output"]
    assert [output["type"] for output in outputs] == ["text", "audio", "info"]
    assert outputs[0]["data"] == "Hello world" and outputs[2]["data"].lower().startswith(
        "heard: what time is it in paris"
    )
    assert scripted_calls()[-1]["prompt"].lower().startswith("what time is it in paris")
    assert soundfile.info(io.BytesIO(base64.b64decode(outputs[1]["data"]))).duration > 0.3
    events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: ")]
    kinds = [
        event["type"] if event["type"] != "chunk" else f"chunk:{type(event['content']).__name__}" for event in events
    ]
    assert kinds == ["info", "chunk:str", "chunk:dict", "final"]


async def test_denoising_lowers_the_noise_of_a_recording(tmp_path: Path) -> None:
    """A tone that comes and goes, under white noise: the noise energy in the gaps drops."""
    config = speech_config(tmp_path)
    config.values["bindings_map"]["clean"] = "denoise_binding"
    config.values["defaults"]["audio2audio_binding"] = "clean"
    write_instance(config, "clean", {"type": "denoise_binding"})
    rate = 16000
    time_axis = numpy.arange(3 * rate) / rate
    gate = numpy.sin(2 * numpy.pi * 2 * time_axis) > 0
    tone = 0.3 * numpy.sin(2 * numpy.pi * 220 * time_axis) * gate
    noisy = (tone + 0.05 * numpy.random.default_rng(0).standard_normal(len(time_axis))).astype("float32")
    buffer = io.BytesIO()
    soundfile.write(buffer, noisy, rate, format="FLAC")
    body = {
        "generation_type": "audio2audio",
        "input_data": [audio_item(base64.b64encode(buffer.getvalue()).decode(), "audio/flac")],
    }
    async with running_client(create_app(config)) as client:
        cleaned = await client.post("/api/v1/generate", json=body)
        not_audio = await client.post(
            "/api/v1/generate", json={**body, "input_data": [audio_item(base64.b64encode(b"nope").decode())]}
        )
    assert cleaned.status_code == 200, cleaned.text
    [output] = cleaned.json()["output"]
    samples, out_rate = soundfile.read(io.BytesIO(base64.b64decode(output["data"])))
    assert out_rate == rate and abs(len(samples) - len(noisy)) <= 2
    gaps = ~gate
    gaps[: rate // 2] = False  # the model settles during its first half second
    before, after = float(numpy.mean(noisy[gaps] ** 2)), float(numpy.mean(samples[: len(gaps)][gaps] ** 2))
    assert after < before / 10, (before, after)
    assert not_audio.status_code == 400 and "not audio" in not_audio.json()["detail"]


async def test_large_outputs_go_to_the_artifact_store_unless_asked_inline(tmp_path: Path) -> None:
    config = speech_config(tmp_path)
    config.values["artifacts"]["inline_max_bytes"] = 1024  # a second of speech is far larger
    body = {"generation_type": "tts", "input_data": [prompt("A sentence long enough to be large.")]}
    async with running_client(create_app(config)) as client:
        stored = await client.post("/api/v1/generate", json=body)
        inline = await client.post("/api/v1/generate", json={**body, "parameters": {"output_format": "base64"}})
        small = await client.post(
            "/api/v1/generate", json={"generation_type": "stt", "input_data": [audio_item(wav_b64(0.5))]}
        )
        [output] = stored.json()["output"]
        fetched = await client.get(output["data"])
        spoken = await client.post("/v1/audio/speech", json={"input": "Hello.", "response_format": "wav"})
    assert output["data"].startswith("/api/v1/artifacts/") and output["metadata"]["size"] > 1024
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "audio/wav"
    assert soundfile.info(io.BytesIO(fetched.content)).format == "WAV"
    assert base64.b64decode(inline.json()["output"][0]["data"])[:4] == b"RIFF"
    assert small.json()["output"][0]["type"] == "text"  # text is never stored
    assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF"  # OpenAI's speech API answers bytes
