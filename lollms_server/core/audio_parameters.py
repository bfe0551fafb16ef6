"""The parameters of speech tasks: text-to-speech (``tts``) and speech-to-text (``stt``). Like the image
parameters, anything else is refused (400 naming it); bindings add their own caps and choices (voices)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lollms_server.core.parameters import checked_model

# Output audio formats and their media types (what soundfile writes: WAV, FLAC, MP3, Ogg Opus; pcm is raw
# 16-bit little-endian mono samples, as OpenAI's speech API answers it).
AUDIO_FORMATS = {
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "flac": "audio/flac",
    "pcm": "audio/L16",
}


class SpeechParameters(BaseModel):
    """What a text-to-speech request may set. Defaults are the binding's."""

    model_config = ConfigDict(extra="forbid")

    voice: str | None = Field(default=None, max_length=64, description="A voice the binding lists.")
    speed: float | None = Field(default=None, ge=0.25, le=4.0, description="1.0 is the voice's own pace.")
    audio_format: Literal["wav", "mp3", "opus", "flac", "pcm"] | None = Field(
        default=None, description="Encoding of the audio (wav by default)."
    )
    sample_rate: int | None = Field(default=None, ge=8000, le=48000, description="Resampled to this rate.")
    seed: int | None = Field(default=None, ge=-1, le=2**63 - 1, description="The same seed, the same audio.")


class TranscriptionParameters(BaseModel):
    """What a speech-to-text request may set."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(default=None, max_length=16, description="ISO code ('en', 'fr'); none detects it.")
    translate: bool = Field(default=False, description="Translate into English instead of transcribing.")
    timestamps: Literal["none", "segment", "word"] = Field(default="segment", description="Timing detail.")
    vad_filter: bool = Field(default=False, description="Skip silences with voice activity detection.")
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    prompt: str | None = Field(default=None, max_length=2000, description="Text that conditions the transcript.")
    beam_size: int | None = Field(default=None, ge=1, le=10)


class AudioToAudioParameters(BaseModel):
    """What an audio-to-audio request (speech enhancement) may set."""

    model_config = ConfigDict(extra="forbid")

    audio_format: Literal["wav", "mp3", "opus", "flac", "pcm"] | None = Field(default=None)
    sample_rate: int | None = Field(
        default=None, ge=8000, le=48000, description="Of the output; the input's by default."
    )
    attenuation_limit_db: float | None = Field(
        default=None, ge=0.0, le=100.0, description="Most noise reduction in dB (100: as much as the model can)."
    )


class MusicParameters(BaseModel):
    """What a text-to-music request may set."""

    model_config = ConfigDict(extra="forbid")

    duration: float | None = Field(default=None, gt=0.0, le=300.0, description="Seconds of music (the binding caps).")
    guidance_scale: float | None = Field(default=None, ge=0.0, le=20.0)
    temperature: float | None = Field(default=None, gt=0.0, le=2.0)
    top_k: int | None = Field(default=None, ge=1, le=4096)
    seed: int | None = Field(default=None, ge=-1, le=2**63 - 1)
    audio_format: Literal["wav", "mp3", "opus", "flac", "pcm"] | None = Field(default=None)
    sample_rate: int | None = Field(default=None, ge=8000, le=48000)


def _checked(model: type[BaseModel], parameters: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    return checked_model(model, parameters, f"{what} parameters").model_dump(exclude_none=True)


def speech_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return _checked(SpeechParameters, parameters, "text-to-speech")


def transcription_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return _checked(TranscriptionParameters, parameters, "speech-to-text")


def audio_to_audio_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return _checked(AudioToAudioParameters, parameters, "audio-to-audio")


def music_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    return _checked(MusicParameters, parameters, "text-to-music")
