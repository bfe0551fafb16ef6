"""Additions to the generated OpenAPI schema: the API key scheme, the plain Starlette routes, error bodies.

Routes document their error statuses with ``documented_errors`` and the error model of their API; FastAPI's
default 422 body (``HTTPValidationError``) is replaced by the error body the path really returns.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from lollms_server.api.auth import API_KEY_HEADER, PROTECTED_PREFIXES
from lollms_server.api.error_shapes import shapes_of
from lollms_server.api.generate import GENERATE_PATH
from lollms_server.api.models import ErrorResponse, GenerateRequest, GenerateResponse, StreamChunk

_SCHEME = "APIKeyHeader"
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"

STATUS_DESCRIPTIONS = {
    400: "Bad request: unsupported input or field, invalid parameters, no binding, prompt over the context",
    401: "Invalid API key",
    403: "Missing API key",
    404: "Unknown model, binding instance or personality",
    408: "Waited too long for a compute slot (see Retry-After)",
    413: "Request body too large",
    415: "A browser request whose body is not declared as JSON",
    422: "Malformed request body (not JSON, or fields of the wrong type)",
    429: "The backend is rate limiting (see Retry-After)",
    500: "Internal error (the body carries a request id)",
    501: "The binding cannot do this",
    502: "The backend failed, answered something unexpected, or refused the server's credentials",
    503: "The binding is unavailable, or the queue is full (see Retry-After)",
    504: "The backend timed out",
    508: "Loop detected: the request came back through a relay instance whose backend leads back to this server",
}
# What a route that runs a generation, or an embedding, can answer besides 401 and 403.
GENERATION_ERRORS = (400, 404, 408, 413, 415, 422, 429, 500, 501, 502, 503, 504, 508)
EMBEDDING_ERRORS = GENERATION_ERRORS


def documented_errors(model: type[BaseModel], *statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for 401, 403 and ``statuses``, each with ``model`` as its body."""
    return {status: {"model": model, "description": STATUS_DESCRIPTIONS[status]} for status in (401, 403, *statuses)}


def multipart_body(
    fields: type[BaseModel], files: dict[str, dict[str, Any]], required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``openapi_extra`` documenting a multipart/form-data body: ``files`` (binary parts) and ``fields``."""
    schema = fields.model_json_schema(mode="validation")
    properties = {**files, **{name: value for name, value in schema.get("properties", {}).items() if name not in files}}
    body = {"type": "object", "properties": properties, "required": list(required)}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": body}}}}


def _add_schema(schema: dict[str, Any], model: type[BaseModel], mode: str) -> dict[str, str]:
    definitions = schema.setdefault("components", {}).setdefault("schemas", {})
    generated = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)  # type: ignore[arg-type]
    for name, definition in generated.pop("$defs", {}).items():
        definitions.setdefault(name, definition)
    definitions.setdefault(model.__name__, generated)
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(reference: dict[str, str], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": reference}}}


def _generate_operation(schema: dict[str, Any]) -> dict[str, Any]:
    error = _add_schema(schema, ErrorResponse, "serialization")
    errors = {str(status): STATUS_DESCRIPTIONS[status] for status in (401, 403, *GENERATION_ERRORS)}
    return {
        "summary": "Generate (set stream: true for Server-Sent Events)",
        "operationId": "generate",
        "tags": ["generation"],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _add_schema(schema, GenerateRequest, "validation")}},
        },
        "responses": {
            "200": {
                "description": "The outputs, or with stream: true a text/event-stream of StreamChunk JSON events",
                "content": {
                    "application/json": {"schema": _add_schema(schema, GenerateResponse, "serialization")},
                    "text/event-stream": {"schema": _add_schema(schema, StreamChunk, "serialization")},
                },
            },
            **{status: _json(error, text) for status, text in errors.items()},
        },
    }


def _replace_fastapi_422(schema: dict[str, Any], model: type[BaseModel], operation: dict[str, Any]) -> None:
    response = operation.get("responses", {}).get("422")
    content = (response or {}).get("content", {}).get("application/json", {})
    if content.get("schema", {}).get("$ref") == _FASTAPI_422:
        content["schema"] = _add_schema(schema, model, "serialization")
        response["description"] = STATUS_DESCRIPTIONS[422]


def _drop_unused_fastapi_422(schema: dict[str, Any]) -> None:
    definitions = schema.get("components", {}).get("schemas", {})
    if _FASTAPI_422 not in repr(schema.get("paths")):
        definitions.pop("HTTPValidationError", None)
        if "#/components/schemas/ValidationError" not in repr(definitions):
            definitions.pop("ValidationError", None)


def customize_openapi(app: FastAPI) -> None:
    """Document /generate and the X-API-Key scheme (with an "Authorize" button in /docs)."""
    build_schema = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build_schema()
        schema.setdefault("paths", {})[GENERATE_PATH] = {"post": _generate_operation(schema)}
        schema.setdefault("components", {}).setdefault("securitySchemes", {})[_SCHEME] = {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
        }
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                if path.startswith(PROTECTED_PREFIXES):
                    operation["security"] = [{_SCHEME: []}]
                # The error body of the API that owns the path (error_shapes.py), as errors.py answers.
                _replace_fastapi_422(schema, shapes_of({"app": app}).for_path(path).model, operation)
        _drop_unused_fastapi_422(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
