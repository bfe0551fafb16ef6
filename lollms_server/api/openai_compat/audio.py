"""OpenAI's audio API over our tts and stt tasks: model names, the transcript formats (json, text, srt, vtt,
verbose_json) and the streamed speech bytes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from lollms_server.api.models import OutputData
from lollms_server.core.errors import BackendFailedError, BadRequestError
from lollms_server.core.events import MediaDelta
from lollms_server.core.model_ids import ModelChoice, ModelIds

# OpenAI's own model names, which clients hard-code: they mean "the server's default binding for the task".
OPENAI_SPEECH_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_TRANSCRIPTION_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
# Formats whose pieces can be sent one after the other as they are made (MP3 frames, raw samples).
STREAMED_SPEECH_FORMATS = ("mp3", "pcm")


def audio_model(model: str | None, model_ids: ModelIds, openai_names: tuple[str, ...]) -> ModelChoice:
    if not model or model in openai_names:
        return ModelChoice(None, None)
    return model_ids.parse(model)


def speech_audio(outputs: list[OutputData]) -> tuple[bytes, str]:
    """(bytes, media type) of the synthesized audio; BackendFailedError when none came."""
    audio = next((output for output in outputs if output.type == "audio" and isinstance(output.data, str)), None)
    if audio is None:
        errors = [str(output.data) for output in outputs if output.type == "error"]
        raise BackendFailedError("; ".join(errors) or "the binding produced no audio")
    return base64.b64decode(audio.data), (audio.mime_type or "application/octet-stream").split(";")[0]


async def speech_pieces(events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """The audio bytes of a speech stream's pieces, as they come (the final whole audio is not sent again)."""
    async for event in events:
        if isinstance(event, MediaDelta) and event.output.get("type") == "audio":
            yield base64.b64decode(event.output["data"])


def transcript_text(outputs: list[OutputData]) -> tuple[str, dict[str, Any]]:
    text = next((output for output in outputs if output.type == "text"), None)
    if text is None:
        errors = [str(output.data) for output in outputs if output.type == "error"]
        raise BackendFailedError("; ".join(errors) or "the binding produced no transcript")
    return str(text.data), dict(text.metadata or {})


def _clock(seconds: float, separator: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def transcript_body(outputs: list[OutputData], response_format: str, task: str) -> tuple[Any, str]:
    """(body, media type) of a transcript in one of OpenAI's formats."""
    if response_format not in TRANSCRIPT_FORMATS:
        raise BadRequestError(f"response_format '{response_format}': use one of {', '.join(TRANSCRIPT_FORMATS)}")
    text, metadata = transcript_text(outputs)
    segments = metadata.get("segments") or []
    if response_format == "json":
        return {"text": text}, "application/json"
    if response_format == "text":
        return text + "\n", "text/plain"
    if response_format == "srt":
        blocks = [
            f"{index}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text'].strip()}\n"
            for index, s in enumerate(segments, 1)
        ]
        return "\n".join(blocks), "text/plain"
    if response_format == "vtt":
        blocks = [f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{s['text'].strip()}\n" for s in segments]
        return "WEBVTT\n\n" + "\n".join(blocks), "text/vtt"
    body: dict[str, Any] = {
        "task": task,
        "language": metadata.get("language"),
        "duration": metadata.get("duration"),
        "text": text,
        "segments": [{key: value for key, value in s.items() if key != "words"} for s in segments],
    }
    words = [word for s in segments for word in s.get("words") or []]
    if words:
        body["words"] = words
    return body, "application/json"
