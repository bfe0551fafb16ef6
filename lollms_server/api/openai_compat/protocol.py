"""Wire models of the OpenAI API subset we serve, and its error body.

Clients send many fields. Each one OpenAI defines is either served, accepted because it does not change the
answer (``user``, ``metadata``, ``store``...), or listed in ``REFUSED`` with why: a field that would change the
answer is refused with 400, never dropped. Fields OpenAI does not define are accepted and logged as ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.error_shapes import ErrorShape
from lollms_server.api.wire_fields import Refusal, given, more_than_one

_NO_EFFECT = "Accepted; it does not change the answer."
_NOT_YET = "is not supported by this server yet"
_LEGACY_FUNCTIONS = "the legacy functions field is not supported: send tools (and tool_choice) instead"


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class ChatMessage(_Open):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (Refusal("function_call", given, _LEGACY_FUNCTIONS),)

    role: str
    content: str | list[dict[str, Any]] | None = None
    name: str | None = Field(default=None, description="Accepted; the model does not see participant names.")
    tool_calls: list[dict[str, Any]] | None = Field(default=None, description="An assistant message's tool calls.")
    tool_call_id: str | None = Field(default=None, description="The call a role 'tool' message answers.")
    function_call: dict[str, Any] | None = Field(default=None, description="Refused with 400 (legacy; use tools).")


class SamplingFields(_Open):
    """Sampling fields shared by chat and text completions (plus the extras compatible servers accept)."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal("n", more_than_one, "only n=1 is supported (one choice per request)"),
        Refusal("logit_bias", bool, f"logit_bias {_NOT_YET}"),
    )

    model: str
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    n: int | None = Field(default=None, ge=1, description="Only 1 is supported (400 otherwise).")
    logit_bias: dict[str, float] | None = Field(default=None, description="Refused with 400 when not empty.")
    user: str | None = Field(default=None, description=_NO_EFFECT)
    metadata: dict[str, Any] | None = Field(default=None, description=_NO_EFFECT)
    store: bool | None = Field(default=None, description=_NO_EFFECT)
    service_tier: str | None = Field(default=None, description=_NO_EFFECT)
    top_k: int | None = None
    repeat_penalty: float | None = None
    repeat_last_n: int | None = None
    min_p: float | None = None
    personality: str | None = Field(default=None, description="lollms extension: a personality id or name.")


class ChatCompletionRequest(SamplingFields):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        *SamplingFields.REFUSED,
        Refusal("logprobs", bool, f"logprobs {_NOT_YET}"),
        Refusal("top_logprobs", bool, f"top_logprobs {_NOT_YET}"),
        Refusal("functions", bool, _LEGACY_FUNCTIONS),
        Refusal("function_call", given, _LEGACY_FUNCTIONS),
        Refusal("audio", given, "audio output is not supported by this server"),
        Refusal(
            "modalities",
            lambda kinds: any(kind != "text" for kind in kinds or ()),
            "only text output is supported (modalities: ['text'])",
        ),
        Refusal("verbosity", given, f"verbosity {_NOT_YET}"),
        Refusal("web_search_options", given, "web search is not supported by this server"),
    )

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = Field(default=None, description="Refused with 400 when true (not supported yet).")
    top_logprobs: int | None = Field(default=None, description="Refused with 400 when above 0 (not supported yet).")
    tools: list[dict[str, Any]] | None = Field(default=None, description="Function tools the model may call.")
    functions: list[dict[str, Any]] | None = Field(default=None, description="Refused with 400 (legacy; use tools).")
    tool_choice: str | dict[str, Any] | None = Field(
        default=None, description="none, auto (default with tools), required, or a named function."
    )
    function_call: str | dict[str, Any] | None = Field(default=None, description="Refused with 400 (legacy).")
    parallel_tool_calls: bool | None = Field(
        default=None, description="Whether the model may call several tools in one turn (the binding decides)."
    )
    audio: dict[str, Any] | None = Field(default=None, description="Refused with 400 (text output only).")
    modalities: list[str] | None = Field(default=None, description="Only ['text'] (400 otherwise).")
    reasoning_effort: str | None = Field(
        default=None,
        description="Passed to the binding as Ollama's think: 'none' is think false, other levels as they are.",
    )
    verbosity: str | None = Field(default=None, description="Refused with 400 (not supported yet).")
    web_search_options: dict[str, Any] | None = Field(default=None, description="Refused with 400.")
    prediction: dict[str, Any] | None = Field(default=None, description="Accepted; a latency hint only.")
    prompt_cache_key: str | None = Field(default=None, description=_NO_EFFECT)
    safety_identifier: str | None = Field(default=None, description=_NO_EFFECT)


class CompletionRequest(SamplingFields):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        *SamplingFields.REFUSED,
        Refusal("best_of", more_than_one, "only best_of=1 is supported (one completion per request)"),
        Refusal("echo", bool, f"echo {_NOT_YET}"),
        Refusal("suffix", bool, "suffix (fill-in-the-middle) is not supported by this server"),
        Refusal("logprobs", given, f"logprobs {_NOT_YET}"),
    )

    prompt: str | list[str]
    echo: bool | None = Field(default=None, description="Refused with 400 when true (not supported yet).")
    best_of: int | None = Field(default=None, ge=1, description="Only 1 is supported (400 otherwise).")
    suffix: str | None = Field(default=None, description="Refused with 400 when not empty.")
    logprobs: int | None = Field(default=None, description="Refused with 400 (not supported yet).")


class EmbeddingRequest(_Open):
    model: str | None = None
    input: str | list[str] = Field(description="Text or list of texts (token arrays are not supported).")
    encoding_format: str = "float"
    dimensions: int | None = Field(
        default=None, ge=1, description="Accepted only when it is the model's own size (400 otherwise)."
    )
    user: str | None = Field(default=None, description=_NO_EFFECT)
    input_type: str | None = Field(default=None, description="query or passage, for models that distinguish.")


class OpenAIError(BaseModel):
    message: str = Field(description="What went wrong and, where possible, what to fix.")
    type: str = Field(description="invalid_request_error, authentication_error, rate_limit_error or server_error.")
    code: str | None = Field(default=None, description="Stable machine-readable error kind.")
    param: str | None = None
    request_id: str | None = Field(default=None, description="Quote it when reporting a problem.")


class OpenAIErrorResponse(BaseModel):
    """The error body of the OpenAI-compatible API (the openai SDKs raise it as their usual exceptions)."""

    error: OpenAIError


_OPENAI_TYPES = {401: "authentication_error", 403: "authentication_error", 429: "rate_limit_error"}


def _openai_error(
    status: int, code: str, detail: str, request_id: str | None, errors: list[dict[str, Any]] | None
) -> dict[str, Any]:
    kind = _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": detail, "type": kind, "code": code, "param": None, "request_id": request_id}}


# Everything under /v1/ (the Anthropic API's /v1/messages has its own) and the lollms extensions under /lollms/.
ERROR_SHAPE = ErrorShape(("/v1/", "/lollms/"), _openai_error, OpenAIErrorResponse)


_PNG_ONLY = "this server answers with PNG images only (output_format: 'png')"
_OURS = "lollms extension: passed to the image binding as it is."


class ImageFields(_Open):
    """Fields shared by /v1/images/generations (JSON) and /v1/images/edits (multipart form fields)."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal("stream", bool, "streamed image generation is not supported by this server (stream: false)"),
        Refusal("partial_images", bool, "partial_images (streamed previews) are not supported by this server"),
        Refusal(
            "quality",
            lambda value: value not in (None, "auto", "standard"),
            f"quality {_NOT_YET} (send 'auto' or leave it out)",
        ),
        Refusal(
            "background", lambda value: value not in (None, "auto", "opaque"), f"background 'transparent' {_NOT_YET}"
        ),
        Refusal("output_format", lambda value: value not in (None, "png"), _PNG_ONLY),
        Refusal("output_compression", lambda value: value not in (None, 100), f"output_compression: {_PNG_ONLY}"),
        Refusal("complexity", given, f"complexity {_NOT_YET}"),
        Refusal("frame_count", given, f"frame_count (GIF output): {_PNG_ONLY}"),
        Refusal("frame_duration_ms", given, f"frame_duration_ms (GIF output): {_PNG_ONLY}"),
        Refusal("svg", given, f"svg output: {_PNG_ONLY}"),
    )

    prompt: str = Field(description="What to draw (the user_prompt of a tti or i2i generation).")
    model: str | None = Field(
        default=None,
        description="'<instance>/<model>' or '<instance>' (its default model); none: defaults.tti_binding "
        "(generations) or defaults.i2i_binding (edits). An unknown id is a 404.",
    )
    n: int | None = Field(default=None, ge=1, description="Number of images (up to limits.max_images_per_request).")
    size: str | None = Field(default=None, description="'WIDTHxHEIGHT' (multiples of 8) or 'auto' (the binding's).")
    response_format: str | None = Field(
        default=None,
        description="'b64_json' (the default here) or 'url' (stored; fetch it with the API key before it expires).",
    )
    user: str | None = Field(default=None, description=_NO_EFFECT)
    safety_identifier: str | None = Field(default=None, description=_NO_EFFECT)
    moderation: str | None = Field(default=None, description="Accepted; this server applies no content filter.")
    stream: bool | None = Field(default=None, description="Only false (400 otherwise).")
    partial_images: int | None = Field(default=None, description="Only 0 (400 otherwise).")
    quality: str | None = Field(default=None, description="Only 'auto' or 'standard' (400 otherwise).")
    background: str | None = Field(default=None, description="Only 'auto' or 'opaque' (400 otherwise).")
    output_format: str | None = Field(default=None, description="Only 'png' (400 otherwise).")
    output_compression: int | None = Field(default=None, description="Only 100 (400 otherwise): PNG is lossless.")
    complexity: str | None = Field(default=None, description="Refused with 400 (not supported yet).")
    frame_count: int | None = Field(default=None, description="Refused with 400 (PNG only).")
    frame_duration_ms: int | None = Field(default=None, description="Refused with 400 (PNG only).")
    svg: Any = Field(default=None, description="Refused with 400 (PNG only).")
    negative_prompt: str | None = Field(default=None, description=_OURS)
    num_inference_steps: int | None = Field(default=None, ge=1, description=_OURS)
    guidance_scale: float | None = Field(default=None, description=_OURS)
    seed: int | None = Field(default=None, description=_OURS)
    scheduler: str | None = Field(default=None, description=_OURS)


class ImageGenerationRequest(ImageFields):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        *ImageFields.REFUSED,
        Refusal("style", given, f"style {_NOT_YET}"),
    )

    style: str | None = Field(default=None, description="Refused with 400 (not supported yet).")


class ImageEditFields(ImageFields):
    """The form fields of an edit besides its files (``image`` or ``image[]``, ``mask``)."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        *ImageFields.REFUSED,
        Refusal("input_fidelity", given, f"input_fidelity {_NOT_YET} (use strength)"),
        Refusal("markup", given, f"markup {_NOT_YET}"),
    )

    input_fidelity: str | None = Field(default=None, description="Refused with 400 (use strength).")
    markup: str | None = Field(default=None, description="Refused with 400 (not supported yet).")
    strength: float | None = Field(default=None, description=f"How much the image changes. {_OURS}")


class SpeechRequest(_Open):
    """POST /v1/audio/speech."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal(
            "response_format",
            lambda value: value == "aac",
            "response_format aac is not available here: use mp3, opus, flac, wav or pcm",
        ),
        Refusal(
            "stream_format",
            lambda value: value not in (None, "audio"),
            "stream_format 'sse' is not supported (the audio streams as bytes)",
        ),
    )

    model: str | None = Field(
        default=None,
        description="'<instance>[/<model>]', or tts-1 / tts-1-hd / gpt-4o-mini-tts for defaults.tts_binding.",
    )
    input: str = Field(min_length=1, max_length=100_000, description="The text to speak.")
    voice: str | None = Field(default=None, max_length=64, description="A voice of the binding, or OpenAI's names.")
    response_format: str = Field(default="mp3", description="mp3 (default), opus, flac, wav or pcm.")
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    instructions: str | None = Field(default=None, description="Accepted; the local voices take no instructions.")
    stream_format: str | None = Field(default=None, description="Only 'audio'.")


class TranscriptionFields(_Open):
    """Form fields of POST /v1/audio/transcriptions and /v1/audio/translations (besides the file)."""

    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal(
            "stream",
            lambda value: str(value).lower() == "true",
            "streamed transcription is not supported by this server (stream: false)",
        ),
    )

    model: str | None = Field(
        default=None,
        description="'<instance>[/<model>]', or whisper-1 and the gpt-4o-*transcribe names for defaults.stt_binding.",
    )
    language: str | None = Field(default=None, max_length=16)
    prompt: str | None = Field(default=None, max_length=2000)
    response_format: str = Field(default="json", description="json, text, srt, vtt or verbose_json.")
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    stream: str | None = Field(default=None, description="Only false.")
    chunking_strategy: str | None = Field(default=None, description="Accepted; the binding decides.")
