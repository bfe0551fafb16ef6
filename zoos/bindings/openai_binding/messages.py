"""Our conversation and parameters in the OpenAI chat format."""

from __future__ import annotations

import re
from typing import Any

from lollms_server.core.errors import BadRequestError
from lollms_server.core.tools import tool_call

# Model names that take images, for vision: auto.
VISION_MODEL = re.compile(r"gpt-4o|gpt-4\.1|gpt-5|^o[134]|vision|llava|[-_]vl\b|pixtral|gemma-?3", re.IGNORECASE)
# Sampling options outside the OpenAI API that compatible servers (vLLM, llama.cpp server) understand.
COMPATIBLE_EXTRAS = ("top_k", "repeat_penalty", "repeat_last_n", "min_p")


def image_part(item: Any) -> dict[str, Any]:
    if item.type != "image":
        raise BadRequestError(f"openai_binding takes text and images; got {item.type} input with role '{item.role}'")
    # The core hands bindings base64 (URLs fetched, data: URLs decoded, as the server allows).
    url = f"data:{item.mime_type or 'image/png'};base64,{item.data}"
    return {"type": "image_url", "image_url": {"url": url}}


def chat_messages(request_info: dict[str, Any], prompt: str, images: list[Any]) -> list[dict[str, Any]]:
    """The request's messages; images join the last user message as content parts."""
    messages: list[dict[str, Any]] = [
        dict(m) for m in request_info.get("messages") or [{"role": "user", "content": prompt}]
    ]
    if images:
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), None)
        if last_user is None:
            last_user = {"role": "user", "content": ""}
            messages.append(last_user)
        last_user["content"] = [{"type": "text", "text": last_user["content"]}, *(image_part(i) for i in images)]
    return messages


def request_options(params: dict[str, Any], official: bool) -> dict[str, Any]:
    """Request body fields for our normalized parameters."""
    options: dict[str, Any] = {}
    if "max_tokens" in params:
        # OpenAI deprecated max_tokens (reasoning models refuse it); compatible servers still expect it.
        options["max_completion_tokens" if official else "max_tokens"] = params["max_tokens"]
    passed_on = (
        "temperature",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "response_format",
        "tools",  # our tool shape is OpenAI's: tools, tool_choice and the calls in messages pass as they are
        "tool_choice",
        "parallel_tool_calls",
    )
    for key in passed_on:
        if key in params:
            options[key] = params[key]
    if not official:  # OpenAI itself answers 400 to unknown fields
        options.update((key, params[key]) for key in COMPATIBLE_EXTRAS if key in params)
    return options


class ToolCallPieces:
    """A stream's ``delta.tool_calls`` pieces joined by index, as the SDK's own accumulator does."""

    def __init__(self) -> None:
        self.calls: dict[int, dict[str, str]] = {}

    def add(self, deltas: list[Any]) -> None:
        for delta in deltas:
            if not isinstance(delta, dict):
                continue
            call = self.calls.setdefault(int(delta.get("index") or 0), {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function")
            if isinstance(function, dict):
                call["name"] += function.get("name") or ""
                call["arguments"] += function.get("arguments") or ""

    def events(self) -> list[dict[str, Any]]:
        return [{"type": "function_call", "content": call_of(call)} for _, call in sorted(self.calls.items())]


def call_of(call: dict[str, str]) -> dict[str, Any]:
    return tool_call(call["name"], call["arguments"] or "{}", call["id"] or None)


def message_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool calls of a complete answer's message, as our function_call outputs."""
    outputs = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            pieces = {
                "id": call.get("id") or "",
                "name": function.get("name") or "",
                "arguments": function.get("arguments") or "",
            }
            outputs.append({"type": "function_call", "data": call_of(pieces)})
    return outputs
