"""Speech through OpenAI's audio API (and compatible servers): text-to-speech and transcription."""

from __future__ import annotations

import base64
from typing import Any

from lollms_server.core.audio_parameters import AUDIO_FORMATS
from lollms_server.core.errors import BadRequestError

SPEECH_TASK, TRANSCRIPTION_TASK = "tts", "stt"
AUDIO_TASKS = (SPEECH_TASK, TRANSCRIPTION_TASK)
EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/x-m4a": "m4a",
}


def speech_arguments(model: str, text: str, params: dict[str, Any], default_voice: str) -> dict[str, Any]:
    audio_format = str(params.get("audio_format") or "wav")
    arguments: dict[str, Any] = {
        "model": model,
        "input": text,
        "voice": params.get("voice") or default_voice,
        "response_format": audio_format,
    }
    if params.get("speed") is not None:
        arguments["speed"] = params["speed"]
    refused = [name for name in ("sample_rate", "seed") if params.get(name) is not None]
    if refused:
        raise BadRequestError(f"OpenAI's speech API cannot honour {', '.join(refused)}")
    return arguments


def speech_output(audio: bytes, model: str, arguments: dict[str, Any]) -> dict[str, Any]:
    mime = AUDIO_FORMATS.get(arguments["response_format"], "application/octet-stream")
    metadata = {"model": model, "voice": arguments["voice"], "format": arguments["response_format"]}
    return {"type": "audio", "data": base64.b64encode(audio).decode("ascii"), "mime_type": mime, "metadata": metadata}


def transcription_arguments(model: str, params: dict[str, Any], items: list[Any]) -> dict[str, Any]:
    audio = [item for item in items if item.type == "audio"]
    if len(audio) != 1:
        raise BadRequestError(f"send exactly one audio item with role input_audio (got {len(audio)})")
    mime = (audio[0].mime_type or "audio/wav").split(";")[0]
    arguments: dict[str, Any] = {
        "model": model,
        "file": (f"audio.{EXTENSIONS.get(mime, 'wav')}", audio[0].binary(), mime),
        "response_format": "verbose_json",
    }
    if params.get("timestamps") == "word":
        arguments["timestamp_granularities"] = ["word", "segment"]
    for name in ("language", "prompt", "temperature"):
        if params.get(name) is not None and not (name == "language" and params.get("translate")):
            arguments[name] = params[name]
    return arguments


def transcription_output(result: Any, model: str, params: dict[str, Any]) -> dict[str, Any]:
    """The text output of a verbose_json transcription (a plain text answer from servers that ignore it)."""
    if isinstance(result, str):
        return {"type": "text", "data": result.strip(), "metadata": {"model": model}}
    segments = [
        {"id": s.id, "start": s.start, "end": s.end, "text": s.text} for s in getattr(result, "segments", None) or []
    ]
    words = getattr(result, "words", None) or []
    if words and segments:
        segments[0]["words"] = [{"word": w.word, "start": w.start, "end": w.end} for w in words]
    metadata = {
        "model": model,
        "language": getattr(result, "language", None),
        "duration": getattr(result, "duration", None),
        "task": "translate" if params.get("translate") else "transcribe",
        "segments": segments if params.get("timestamps") != "none" else [],
    }
    return {"type": "text", "data": str(result.text).strip(), "metadata": metadata}
