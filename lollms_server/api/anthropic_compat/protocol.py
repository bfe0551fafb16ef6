"""Wire models of the Anthropic Messages API subset we serve, and its error body.

As for the other compatible APIs, each field Anthropic defines is served, accepted because it does not change
the answer, or refused with 400 and why; fields Anthropic does not define are accepted and logged as ignored.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.error_shapes import ErrorShape
from lollms_server.api.wire_fields import Refusal, given

_NO_EFFECT = "Accepted; it does not change the answer."


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class AnthropicMessage(_Open):
    role: str = Field(description="user or assistant")
    content: str | list[dict[str, Any]]


class MessagesRequest(_Open):
    REFUSED: ClassVar[tuple[Refusal, ...]] = (
        Refusal("mcp_servers", bool, "MCP servers are not supported by this server"),
        Refusal("container", given, "code execution containers are not supported by this server"),
    )

    model: str
    max_tokens: int = Field(ge=1, description="Most tokens of the answer (required, as in Anthropic's API).")
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stream: bool = False
    tools: list[dict[str, Any]] | None = Field(default=None, description="Tools: name, description, input_schema.")
    tool_choice: dict[str, Any] | None = Field(default=None, description="auto, any, tool (with name) or none.")
    thinking: dict[str, Any] | None = Field(
        default=None, description="Passed to the binding as think (enabled: true); thoughts are not returned."
    )
    metadata: dict[str, Any] | None = Field(default=None, description=_NO_EFFECT)
    service_tier: str | None = Field(default=None, description=_NO_EFFECT)
    mcp_servers: list[dict[str, Any]] | None = Field(default=None, description="Refused with 400.")
    container: Any = Field(default=None, description="Refused with 400.")


class CountTokensRequest(_Open):
    model: str
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class AnthropicError(BaseModel):
    type: str = Field(description="invalid_request_error, authentication_error, not_found_error, api_error...")
    message: str


class AnthropicErrorResponse(BaseModel):
    type: str = "error"
    error: AnthropicError
    request_id: str | None = None


_ANTHROPIC_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}


def _anthropic_error(
    status: int, code: str, detail: str, request_id: str | None, errors: list[dict[str, Any]] | None
) -> dict[str, Any]:
    kind = _ANTHROPIC_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": detail}, "request_id": request_id}


ERROR_SHAPE = ErrorShape(("/v1/messages",), _anthropic_error, AnthropicErrorResponse)
