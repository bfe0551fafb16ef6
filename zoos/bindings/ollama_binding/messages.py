"""Our conversation, images and parameters in the shape of Ollama's chat API."""

from __future__ import annotations

import base64
import re
from typing import Any, Literal

from lollms_server.core.errors import BadRequestError
from lollms_server.core.tools import arguments_object, tool_call

# Our normalized parameter -> Ollama option.
OPTION_NAMES = {
    "max_tokens": "num_predict",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "seed": "seed",
    "stop": "stop",
}
# Ollama options outside the normalized vocabulary, passed on when a request or personality sets them.
PASSTHROUGH_OPTIONS = (
    "min_p",
    "typical_p",
    "presence_penalty",
    "frequency_penalty",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    "num_keep",
)
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def image_base64(item: Any) -> str:
    """The image of an input item as Ollama takes it (plain base64, checked by decoding it); BadRequestError for
    other types, URLs or bad base64."""
    if item.type != "image":
        raise BadRequestError(f"ollama_binding takes text and images; got {item.type} input with role '{item.role}'")
    return base64.b64encode(item.binary()).decode("ascii")


def chat_messages(request_info: dict[str, Any], prompt: str, multimodal_data: list[Any] | None) -> list[dict[str, Any]]:
    """The request's messages in Ollama's shape (calls with object arguments, tool results by tool name); images
    join the last user message."""
    messages = [
        _ollama_message(message) for message in request_info.get("messages") or [{"role": "user", "content": prompt}]
    ]
    images = [image_base64(item) for item in multimodal_data or []]
    if images:
        last_user = next((message for message in reversed(messages) if message["role"] == "user"), None)
        if last_user is None:
            last_user = {"role": "user", "content": prompt}
            messages.append(last_user)
        last_user["images"] = images
    return messages


def chat_options(params: dict[str, Any], num_ctx: int | None) -> dict[str, Any]:
    """Ollama ``options`` for our parameters and the instance's context size."""
    options = {option: params[key] for key, option in OPTION_NAMES.items() if params.get(key) is not None}
    options.update({key: params[key] for key in PASSTHROUGH_OPTIONS if params.get(key) is not None})
    if num_ctx:
        options["num_ctx"] = int(num_ctx)
    return options


def response_format(params: dict[str, Any]) -> Literal["json"] | dict[str, Any] | None:
    """Ollama's ``format`` for an OpenAI-style ``response_format``: a JSON schema, or "json" for any JSON."""
    requested = params.get("response_format")
    if not isinstance(requested, dict) or requested.get("type") not in ("json_object", "json_schema"):
        return None
    schema = (requested.get("json_schema") or {}).get("schema") or requested.get("schema")
    return dict(schema) if isinstance(schema, dict) else "json"


def keep_alive_value(value: str | None) -> str | float | None:
    """keep_alive as Ollama parses it: durations stay strings ("5m"), bare numbers are seconds."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    return float(value) if _NUMBER.match(value) else value


def _ollama_message(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("tool_calls"):
        calls = [
            {
                "function": {
                    "name": call["function"]["name"],
                    "arguments": arguments_object(call["function"].get("arguments")),
                }
            }
            for call in message["tool_calls"]
        ]
        return {"role": message["role"], "content": message.get("content") or "", "tool_calls": calls}
    if message["role"] == "tool":
        return {
            "role": "tool",
            "content": message.get("content") or "",
            **({"tool_name": message["name"]} if message.get("name") else {}),
        }
    return dict(message)


def call_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of an answer part as our function_call events (Ollama's calls have no ids: given one)."""
    events = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and function.get("name"):
            arguments = function.get("arguments")
            content = tool_call(function["name"], dict(arguments) if isinstance(arguments, dict) else {})
            events.append({"type": "function_call", "content": content})
    return events
