"""Tool calling in the domain: the tools a request offers, how it lets the model choose, and the calls that come back.

One shape for every API and binding, OpenAI's (the one most clients speak): ``parameters.tools`` is a list of
``{"type": "function", "function": {"name", "description", "parameters": <JSON schema>}}``;
``parameters.tool_choice`` is ``"none"``, ``"auto"`` (default), ``"required"`` or
``{"type": "function", "function": {"name": ...}}``. A call is ``{"id", "name", "arguments"}`` with the arguments
as JSON text: an output item ``{"type": "function_call", "data": <call>}``, a stream event
``{"type": "function_call", "content": <call>}``, and ``finish_reason: "tool_calls"``. A conversation continues
with an ``assistant_reply`` item carrying ``metadata.tool_calls`` and one ``tool_result`` item per call
(``metadata.tool_call_id``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lollms_server.core.client_schemas import check_client_schema

MAX_TOOLS = 128  # OpenAI's limit
MAX_TOOL_SCHEMA_CHARS = 64 * 1024
MAX_DESCRIPTION_CHARS = 4096
TOOL_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TOOL_RESULT_ROLE = "tool_result"
FUNCTION_CALL = "function_call"
TOOL_CALLS_FINISH = "tool_calls"


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")  # "strict" and vendor extras change nothing here

    name: str = Field(pattern=TOOL_NAME_PATTERN)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _bounded_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(value)) > MAX_TOOL_SCHEMA_CHARS:
            raise ValueError(f"a tool's parameters schema may have at most {MAX_TOOL_SCHEMA_CHARS:,} characters")
        check_client_schema(value, "parameters")
        return value


class ToolSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedChoice(BaseModel):
    type: Literal["function"] = "function"
    function: dict[str, str]

    @property
    def name(self) -> str:
        return self.function.get("name", "")


ToolChoice = Literal["none", "auto", "required"] | NamedChoice


def check_tool_choice(tools: list[ToolSpec] | None, choice: Any) -> None:
    """A tool_choice that names a tool must name one of ``tools``; ``required`` or a named tool needs tools
    (``none`` and ``auto`` without tools change nothing, and clients send them)."""
    if choice is None:
        return
    if not tools and choice not in ("none", "auto"):
        raise ValueError("tool_choice needs tools")
    if isinstance(choice, NamedChoice) and choice.name not in {tool.function.name for tool in tools or []}:
        raise ValueError(f"tool_choice names '{choice.name[:64]}', which is not one of the tools")


def tool_call(name: str, arguments: str | dict[str, Any], call_id: str | None = None) -> dict[str, Any]:
    """A call as the domain carries it; ``arguments`` as JSON text."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return {"id": call_id or new_call_id(), "name": name, "arguments": text}


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(12)


def openai_tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our calls in the shape of OpenAI's ``tool_calls`` (also what bindings get in ``messages``)."""
    return [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
        for call in calls
    ]


def calls_of_metadata(metadata: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The tool calls an ``assistant_reply`` item carries (``metadata.tool_calls``), checked."""
    calls = (metadata or {}).get("tool_calls") or []
    if not isinstance(calls, list):
        raise ValueError("metadata.tool_calls must be a list of {id, name, arguments}")
    checked = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ValueError("each of metadata.tool_calls needs a name (and id, arguments)")
        arguments = call.get("arguments", "{}")
        checked.append(
            tool_call(call["name"], arguments if isinstance(arguments, (str, dict)) else "{}", call.get("id"))
        )
    return checked


def is_client_call(content: Any) -> bool:
    """Whether a ``function_call`` event or output is a call for the client to run (``{"id", "name",
    "arguments"}``), not one the server already ran (those carry their ``result``)."""
    return isinstance(content, dict) and "arguments" in content and "name" in content and "result" not in content


def arguments_object(arguments: Any) -> dict[str, Any]:
    """A call's arguments (JSON text, or already an object) as an object; {} when they are not one."""
    try:
        value = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
