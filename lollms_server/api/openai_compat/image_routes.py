"""Routes of OpenAI's images API: /v1/images/generations (JSON) and /v1/images/edits (multipart, as the SDKs send)."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

from lollms_server.api.deps import BindingManagerDep, GenerationServiceDep
from lollms_server.api.errors import request_id_of
from lollms_server.api.generation_flow import run_to_completion
from lollms_server.api.json_response import JsonResponse
from lollms_server.api.models import InputData
from lollms_server.api.openai_compat.images import (
    image_request,
    images_response,
    repaint_mask,
    response_format_of,
    upload_item,
)
from lollms_server.api.openai_compat.protocol import (
    ImageEditFields,
    ImageFields,
    ImageGenerationRequest,
    OpenAIErrorResponse,
)
from lollms_server.api.openapi import GENERATION_ERRORS, documented_errors, multipart_body
from lollms_server.api.wire_fields import log_ignored, unknown_fields
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.errors import BadRequestError
from lollms_server.core.generation import GenerationService

router = APIRouter(tags=["openai-compatible"])
_NOT_OPENAI = "not part of the OpenAI images API this server implements"
_IMAGE_FILES = ("image", "image[]")
_EDIT_FILES = {
    "image": {"type": "string", "format": "binary", "description": "The image to edit (one; also sent as image[])."},
    "mask": {
        "type": "string",
        "format": "binary",
        "description": "PNG with an alpha channel, the image's size: transparent pixels mark the area to repaint.",
    },
}


def _errors() -> dict[int | str, dict[str, Any]]:
    return documented_errors(OpenAIErrorResponse, *GENERATION_ERRORS)


def _log_unknown(request: Request, fields: BaseModel) -> None:
    log_ignored("OpenAI", request_id_of(request) or "", unknown_fields(fields), _NOT_OPENAI)


async def _answer(
    request: Request, service: GenerationService, ours: GenerationRequest, fields: ImageFields
) -> JSONResponse:
    _, outputs = await run_to_completion(request, service, ours, request_id_of(request) or "")
    public_url = request.app.state.config.public_url  # never request.base_url: its host is the client's Host header
    return JsonResponse(images_response(outputs, response_format_of(fields), public_url))


@router.post("/images/generations", summary="Images from a prompt (text-to-image)", responses=_errors())
async def image_generations(
    body: ImageGenerationRequest, request: Request, service: GenerationServiceDep, bindings: BindingManagerDep
) -> JSONResponse:
    _log_unknown(request, body)
    items = [InputData(type="text", role="user_prompt", data=body.prompt)]
    return await _answer(request, service, image_request(body, items, bindings.model_ids, "tti"), body)


def _edit_fields(form: FormData) -> ImageEditFields:
    """The form's fields besides image and mask; another file stands for its name (so that ``markup`` is refused)."""
    values: dict[str, Any] = {}
    for name, value in form.multi_items():
        if name in (*_IMAGE_FILES, "mask"):
            continue
        values[name] = value if isinstance(value, str) else value.filename or name
    try:
        return ImageEditFields.model_validate(values)
    except ValidationError as exc:  # the same 422 as a JSON body with wrong fields
        raise RequestValidationError(exc.errors()) from None


def _one_file(form: FormData, names: tuple[str, ...], what: str) -> UploadFile | None:
    values = [value for name in names for value in form.getlist(name)]
    if len(values) > 1:
        raise BadRequestError(f"send one {what} per request (got {len(values)})")
    if not values:
        return None
    if not isinstance(values[0], UploadFile):
        raise BadRequestError(f"{what} must be a file part of the multipart form")
    return values[0]


@router.post(
    "/images/edits",
    summary="Edit an image (image-to-image; inpainting with a mask), multipart/form-data",
    responses=_errors(),
    openapi_extra=multipart_body(ImageEditFields, _EDIT_FILES, required=("image", "prompt")),
)
async def image_edits(request: Request, service: GenerationServiceDep, bindings: BindingManagerDep) -> JSONResponse:
    limits = service.limits
    async with request.form(max_files=16) as form:
        fields = _edit_fields(form)
        _log_unknown(request, fields)
        image = _one_file(form, _IMAGE_FILES, "image")
        if image is None:
            raise BadRequestError("image is required: send the image to edit as a file part named 'image'")
        mask = _one_file(form, ("mask",), "mask")
        items = [
            InputData(type="text", role="user_prompt", data=fields.prompt),
            upload_item(await image.read(), image.content_type, "input_image", limits),
        ]
        if mask is not None:
            raw_mask = await mask.read()
            upload_item(raw_mask, mask.content_type, "mask_image", limits)  # its size, before it is decoded
            data = await anyio.to_thread.run_sync(repaint_mask, raw_mask, limits)
            items.append(InputData(type="image", role="mask_image", data=data, mime_type="image/png"))
    return await _answer(request, service, image_request(fields, items, bindings.model_ids, "i2i"), fields)
