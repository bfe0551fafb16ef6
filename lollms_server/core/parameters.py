"""Generation parameters: one normalized vocabulary, layered config defaults < personality < request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lollms_server.core.client_schemas import check_client_schema
from lollms_server.core.errors import BadRequestError
from lollms_server.core.tools import MAX_TOOLS, ToolChoice, ToolSpec, check_tool_choice

# Each stop sequence is checked after every generated token: their number and length are bounded (OpenAI
# allows 4). A JSON schema becomes a sampling grammar: its size is bounded too.
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 500
MAX_RESPONSE_FORMAT_CHARS = 64 * 1024

Model = TypeVar("Model", bound=BaseModel)


def checked_model(model: type[Model], parameters: Mapping[str, Any] | None, what: str) -> Model:
    """``parameters`` validated by ``model``, or BadRequestError naming each problem ("invalid {what}: ...")."""
    try:
        return model.model_validate(dict(parameters or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'parameters'}: {error['msg']}" for error in exc.errors()
        )
        raise BadRequestError(f"invalid {what}: {problems}") from None


class GenerationParameters(BaseModel):
    """The parameters every text binding understands; other keys pass through to the binding."""

    model_config = ConfigDict(extra="allow")

    max_tokens: int | None = Field(default=None, ge=1, description="Most tokens to generate.")
    temperature: float | None = Field(default=None, ge=0.0, description="Randomness; 0 always takes the likeliest.")
    top_k: int | None = Field(default=None, ge=0, description="Sample among this many likeliest tokens.")
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, description="Sample among tokens making this mass.")
    repeat_penalty: float | None = Field(default=None, ge=0.0, description="Above 1 discourages repeating.")
    repeat_last_n: int | None = Field(default=None, ge=0, description="How many recent tokens the penalty sees.")
    seed: int | None = Field(default=None, description="The same seed, the same answer.")
    stop: list[str] | None = Field(default=None, max_length=MAX_STOP_SEQUENCES)
    response_format: dict[str, Any] | None = None
    tools: list[ToolSpec] | None = Field(default=None, max_length=MAX_TOOLS)
    # Meaningful only with ``tools``: marked so that a form built from this schema leaves them to API clients.
    tool_choice: ToolChoice | None = Field(default=None, json_schema_extra={"x-form": False})
    parallel_tool_calls: bool | None = Field(default=None, json_schema_extra={"x-form": False})

    @model_validator(mode="after")
    def _choice_among_tools(self) -> GenerationParameters:
        check_tool_choice(self.tools, self.tool_choice)
        return self

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _short_stops(cls, value: list[str] | None) -> list[str] | None:
        if value and any(len(stop) > MAX_STOP_CHARS for stop in value):
            raise ValueError(f"each stop sequence may have at most {MAX_STOP_CHARS} characters")
        return value

    @field_validator("response_format")
    @classmethod
    def _bounded_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_RESPONSE_FORMAT_CHARS:
            raise ValueError(f"response_format may have at most {MAX_RESPONSE_FORMAT_CHARS:,} characters of JSON")
        # OpenAI's {"type": "json_schema", "json_schema": {"schema": ...}}, or {"type": ..., "schema": ...}.
        nested = value.get("json_schema") if value else None
        if isinstance(nested, dict) and nested.get("schema") is not None:
            check_client_schema(nested["schema"], "json_schema.schema")
        elif value and value.get("schema") is not None:
            check_client_schema(value["schema"], "schema")
        return value


def validate_parameters(parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the known parameters of an untrusted layer (a request); BadRequestError says what is wrong."""
    if not parameters:
        return {}
    return checked_model(GenerationParameters, parameters, "parameters").model_dump(exclude_none=True)


def layer_parameters(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge validated layers, later ones winning (None does not override); stop sequences accumulate."""
    merged: dict[str, Any] = {}
    stops: list[str] = []
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            if key == "stop":
                stops += [stop for stop in value if stop not in stops]
            elif value is not None:
                merged[key] = value
    if stops:
        merged["stop"] = stops
    return merged
