"""Routes of OpenAI's audio API: /v1/audio/speech (JSON in, audio bytes out, streamed for mp3 and pcm) and
/v1/audio/transcriptions, /v1/audio/translations (multipart, as the SDKs send)."""

from __future__ import annotations

import base64
from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from lollms_server.api.deps import BindingManagerDep, GenerationServiceDep
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import run_to_completion, start_stream
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.openai_compat.audio import (
    OPENAI_SPEECH_MODELS,
    OPENAI_TRANSCRIPTION_MODELS,
    STREAMED_SPEECH_FORMATS,
    audio_model,
    speech_audio,
    speech_pieces,
    transcript_body,
)
from lollms_server.api.openai_compat.protocol import OpenAIErrorResponse, SpeechRequest, TranscriptionFields
from lollms_server.api.openapi import GENERATION_ERRORS, documented_errors, multipart_body
from lollms_server.api.streaming import EventStreamResponse
from lollms_server.api.wire_fields import log_ignored, refuse, unknown_fields
from lollms_server.core.audio_parameters import AUDIO_FORMATS
from lollms_server.core.domain import GenerationRequest, InputData
from lollms_server.core.errors import BadRequestError

router = APIRouter(tags=["openai-compatible"])
_NOT_OPENAI = "not part of the OpenAI audio API this server implements"
_FILE = {"file": {"type": "string", "format": "binary", "description": "The audio: wav, mp3, flac, ogg, webm, m4a."}}


def _errors() -> dict[int | str, dict[str, Any]]:
    return documented_errors(OpenAIErrorResponse, *GENERATION_ERRORS)


class _AudioStream(EventStreamResponse):
    """Audio bytes as they are made; the compute slot is released when the response ends."""

    def __init__(self, content: Any, media_type: str, on_close: Any) -> None:
        super().__init__(content, on_close=on_close)
        self.media_type = media_type
        self.headers["content-type"] = media_type


@router.post("/audio/speech", summary="Speech from text (text-to-speech)", responses=_errors())
async def speech(
    body: SpeechRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> Response:
    request_id = request_id_of(request) or ""
    log_ignored("OpenAI", request_id, unknown_fields(body), _NOT_OPENAI)
    refuse(body, body.REFUSED)
    if body.response_format not in AUDIO_FORMATS:
        raise BadRequestError(f"response_format '{body.response_format}': use one of {', '.join(AUDIO_FORMATS)}")
    choice = audio_model(body.model, bindings.model_ids, OPENAI_SPEECH_MODELS)
    parameters: dict[str, Any] = {"audio_format": body.response_format, "output_format": "base64"}  # bytes to send
    for name in ("voice", "speed"):
        if getattr(body, name) is not None:
            parameters[name] = getattr(body, name)
    streamed = body.response_format in STREAMED_SPEECH_FORMATS
    ours = GenerationRequest(
        [InputData(type="text", role="user_prompt", data=body.input)],
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        generation_type="tts",
        stream=streamed,
        parameters=parameters,
    )
    media_type = "audio/pcm" if body.response_format == "pcm" else AUDIO_FORMATS[body.response_format]
    if streamed:
        stream = await start_stream(request, service, ours, request_id)
        return _AudioStream(speech_pieces(stream.pump.events()), media_type, stream.close)
    _, outputs = await run_to_completion(request, service, ours, request_id)
    data, _ = await anyio.to_thread.run_sync(speech_audio, outputs)
    return Response(data, media_type=media_type)


async def _transcribe(request: Request, service: Any, bindings: Any, translate: bool) -> Response:
    request_id = request_id_of(request) or ""
    async with request.form(max_files=2) as form:
        values = {name: value for name, value in form.multi_items() if isinstance(value, str) and name != "file"}
        granularities = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
        values.pop("timestamp_granularities[]", None)
        values.pop("timestamp_granularities", None)
        try:
            fields = TranscriptionFields.model_validate(values)
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        log_ignored("OpenAI", request_id, unknown_fields(fields), _NOT_OPENAI)
        refuse(fields, fields.REFUSED)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequestError("file is required: send the audio as a file part named 'file'")
        raw = await upload.read()
    data = base64.b64encode(raw).decode("ascii")
    service.limits.check_binary(data, "file")
    mime = upload.content_type if upload.content_type and upload.content_type.startswith("audio/") else None
    parameters: dict[str, Any] = {
        "translate": translate,
        "timestamps": "word" if "word" in granularities else "segment",
    }
    for name in ("language", "prompt", "temperature"):
        if getattr(fields, name) is not None:
            parameters[name] = getattr(fields, name)
    choice = audio_model(fields.model, bindings.model_ids, OPENAI_TRANSCRIPTION_MODELS)
    ours = GenerationRequest(
        [InputData(type="audio", role="input_audio", data=data, mime_type=mime)],
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        generation_type="stt",
        parameters=parameters,
    )
    _, outputs = await run_to_completion(request, service, ours, request_id)
    body, media_type = transcript_body(outputs, fields.response_format, "translate" if translate else "transcribe")
    if isinstance(body, str):
        return PlainTextResponse(body, media_type=media_type)
    return JsonResponse(body)


@router.post(
    "/audio/transcriptions",
    summary="Text of speech (speech-to-text), multipart/form-data",
    responses=_errors(),
    openapi_extra=multipart_body(TranscriptionFields, _FILE, required=("file",)),
)
async def transcriptions(request: Request, service: GenerationServiceDep, bindings: BindingManagerDep) -> Response:
    return await _transcribe(request, service, bindings, translate=False)


@router.post(
    "/audio/translations",
    summary="English text of speech in any language, multipart/form-data",
    responses=_errors(),
    openapi_extra=multipart_body(TranscriptionFields, _FILE, required=("file",)),
)
async def translations(request: Request, service: GenerationServiceDep, bindings: BindingManagerDep) -> Response:
    return await _transcribe(request, service, bindings, translate=True)
