"""Speech through Gemini: text-to-speech with its TTS models (an AUDIO answer of raw 16-bit PCM), and
transcription by sending the audio with an instruction to a model that listens."""

from __future__ import annotations

import re
from typing import Any

from google.genai import types

from lollms_server.core.audio_files import audio_output, encode
from lollms_server.core.errors import BadRequestError

TRANSCRIBE = "Generate a verbatim transcript of the speech in this audio. Answer with the transcript only."
TRANSLATE = "Translate the speech in this audio into English. Answer with the English text only."
DEFAULT_VOICE = "Kore"
# OpenAI's voice names -> Gemini's prebuilt voices, so clients that always send one work.
OPENAI_VOICES = {
    "alloy": "Kore", "ash": "Charon", "ballad": "Fenrir", "coral": "Aoede", "echo": "Puck", "fable": "Fenrir",
    "nova": "Kore", "onyx": "Charon", "sage": "Aoede", "shimmer": "Zephyr", "verse": "Puck",
}  # fmt: skip
_RATE = re.compile(r"rate=(\d+)")


def speech_config(params: dict[str, Any]) -> types.GenerateContentConfig:
    refused = [name for name in ("speed", "seed") if params.get(name) is not None]
    if refused:
        raise BadRequestError(f"Gemini's speech models cannot honour {', '.join(refused)}")
    voice = str(params.get("voice") or DEFAULT_VOICE)
    voice = OPENAI_VOICES.get(voice.lower(), voice)
    return types.GenerateContentConfig(
        response_modalities=["AUDIO"],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=voice))
        ),
    )


def spoken_output(response: types.GenerateContentResponse, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The answer's PCM as an audio output in the requested format (blocking: encoding)."""
    import numpy as np

    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    blob = next((part.inline_data for part in parts or [] if part.inline_data and part.inline_data.data), None)
    if blob is None or not blob.data:
        raise BadRequestError(f"model '{model}' answered without audio")
    match = _RATE.search(blob.mime_type or "")
    rate = int(match.group(1)) if match else 24000
    samples = np.frombuffer(blob.data, dtype="<i2").astype(np.float32) / 32768.0
    audio_format = str(params.get("audio_format") or "wav")
    data, mime = encode(samples, rate, audio_format)
    metadata = {"model": model, "sample_rate": rate, "seconds": round(len(samples) / rate, 3), "format": audio_format}
    return audio_output(data, mime, metadata)


def transcription_contents(items: list[Any], params: dict[str, Any]) -> list[types.Content]:
    audio = [item for item in items if item.type == "audio"]
    if len(audio) != 1:
        raise BadRequestError(f"send exactly one audio item with role input_audio (got {len(audio)})")
    instruction = TRANSLATE if params.get("translate") else TRANSCRIBE
    if params.get("language") and not params.get("translate"):
        instruction += f" The speech is in the language with code '{params['language']}'."
    part = types.Part.from_bytes(data=audio[0].binary(), mime_type=audio[0].mime_type or "audio/wav")
    return [types.Content(role="user", parts=[part, types.Part.from_text(text=instruction)])]
