"""Speech through Gemini: text-to-speech with its TTS models (an AUDIO answer of raw 16-bit PCM), and
transcription by sending the audio with an instruction to a model that listens."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from lollms_server.core.audio_files import audio_output, encode
from lollms_server.core.errors import BadRequestError

from .messages import answer_parts, inline_part

TRANSCRIBE = "Generate a verbatim transcript of the speech in this audio. Answer with the transcript only."
TRANSLATE = "Translate the speech in this audio into English. Answer with the English text only."
DEFAULT_VOICE = "Kore"
# OpenAI's voice names -> Gemini's prebuilt voices, so clients that always send one work.
OPENAI_VOICES = {
    "alloy": "Kore", "ash": "Charon", "ballad": "Fenrir", "coral": "Aoede", "echo": "Puck", "fable": "Fenrir",
    "nova": "Kore", "onyx": "Charon", "sage": "Aoede", "shimmer": "Zephyr", "verse": "Puck",
}  # fmt: skip
_RATE = re.compile(r"rate=(\d+)")


def speech_body(text: str, params: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body asking a TTS model to speak ``text``."""
    refused = [name for name in ("speed", "seed") if params.get(name) is not None]
    if refused:
        raise BadRequestError(f"Gemini's speech models cannot honour {', '.join(refused)}")
    voice = str(params.get("voice") or DEFAULT_VOICE)
    voice = OPENAI_VOICES.get(voice.lower(), voice)
    speech = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": speech},
    }


def spoken_output(response: dict[str, Any], model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The answer's PCM as an audio output in the requested format (blocking: encoding)."""
    import numpy as np

    blobs = (part.get("inlineData") or {} for part in answer_parts(response))
    blob = next((blob for blob in blobs if blob.get("data")), None)
    try:
        pcm = base64.b64decode(blob["data"], validate=True) if blob else b""
    except (binascii.Error, TypeError):
        pcm = b""
    if not blob or not pcm:
        raise BadRequestError(f"model '{model}' answered without audio")
    match = _RATE.search(str(blob.get("mimeType") or ""))
    rate = int(match.group(1)) if match else 24000
    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    audio_format = str(params.get("audio_format") or "wav")
    data, mime = encode(samples, rate, audio_format)
    metadata = {"model": model, "sample_rate": rate, "seconds": round(len(samples) / rate, 3), "format": audio_format}
    return audio_output(data, mime, metadata)


def transcription_body(items: list[Any], params: dict[str, Any]) -> dict[str, Any]:
    """The generateContent body asking a model to transcribe (or translate) one audio item (blocking: decoding)."""
    audio = [item for item in items if item.type == "audio"]
    if len(audio) != 1:
        raise BadRequestError(f"send exactly one audio item with role input_audio (got {len(audio)})")
    instruction = TRANSLATE if params.get("translate") else TRANSCRIBE
    if params.get("language") and not params.get("translate"):
        instruction += f" The speech is in the language with code '{params['language']}'."
    part = inline_part(audio[0].binary(), audio[0].mime_type or "audio/wav")
    return {"contents": [{"role": "user", "parts": [part, {"text": instruction}]}]}
