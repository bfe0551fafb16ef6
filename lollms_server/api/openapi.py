"""Additions to the generated OpenAPI schema: the API key scheme and the plain Starlette routes."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from lollms_server.api.auth import API_KEY_HEADER, PROTECTED_PREFIXES
from lollms_server.api.generate import GENERATE_PATH
from lollms_server.api.models import ErrorResponse, GenerateRequest, GenerateResponse, StreamChunk

_SCHEME = "APIKeyHeader"


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
    errors = {
        "400": "Bad request (unsupported input, invalid parameters, no binding)",
        "401": "Invalid API key",
        "403": "Missing API key",
        "404": "Unknown binding, model or personality",
        "408": "Waited too long for a compute slot",
        "422": "Malformed request body",
        "500": "Internal error (the body carries a request id)",
        "501": "The binding cannot do this",
        "503": "The binding is unavailable",
    }
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
            if path.startswith(PROTECTED_PREFIXES):
                for operation in operations.values():
                    operation["security"] = [{_SCHEME: []}]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
