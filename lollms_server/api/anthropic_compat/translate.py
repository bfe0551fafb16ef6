"""Anthropic Messages requests as our GenerationRequest; our outputs and stream events as Anthropic's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from typing import Any

from lollms_server.api.anthropic_compat.protocol import AnthropicMessage, CountTokensRequest, MessagesRequest
from lollms_server.api.streaming import stream_error_message
from lollms_server.api.wire_fields import refuse
from lollms_server.core.domain import GenerationRequest, InputData, OutputData
from lollms_server.core.errors import BackendFailedError, BadRequestError
from lollms_server.core.events import Completed, GenerationEvent, SideEvent, TextDelta
from lollms_server.core.model_ids import ModelIds
from lollms_server.core.tools import FUNCTION_CALL, TOOL_RESULT_ROLE, arguments_object, is_client_call, tool_call

# Our finish_reason -> Anthropic's stop_reason.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def message_id(request_id: str) -> str:
    return f"msg_{request_id or secrets.token_hex(8)}"


def messages_request(
    body: MessagesRequest | CountTokensRequest, model_ids: ModelIds, stream: bool = False
) -> GenerationRequest:
    """Our request for an Anthropic one: system, turns (text, images, tool use and results) and parameters."""
    if isinstance(body, MessagesRequest):
        refuse(body, body.REFUSED)
    items = _system_items(body.system)
    for message in body.messages:
        items += _message_items(message)
    parameters: dict[str, Any] = {}
    if isinstance(body, MessagesRequest):
        parameters["max_tokens"] = body.max_tokens
        for ours, theirs in (("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k")):
            if getattr(body, theirs) is not None:
                parameters[ours] = getattr(body, theirs)
        if body.stop_sequences:
            parameters["stop"] = body.stop_sequences
    if body.tools:
        parameters["tools"] = [_tool(tool) for tool in body.tools]
    if body.tool_choice:
        parameters.update(_tool_choice(body.tool_choice))
    if body.thinking and body.thinking.get("type") in ("enabled", "disabled"):
        parameters["think"] = body.thinking["type"] == "enabled"
    choice = model_ids.parse(body.model)
    return GenerationRequest(
        input_data=items,
        personality=choice.personality,
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        stream=stream,
        parameters=parameters,
    )


def _system_items(system: str | list[dict[str, Any]] | None) -> list[InputData]:
    if not system:
        return []
    text = system if isinstance(system, str) else "\n".join(_text_of(block, "system") for block in system)
    return [InputData(type="text", role="system_context", data=text)]


def _text_of(block: Any, where: str) -> str:
    if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
        raise BadRequestError(f"{where} blocks must be text blocks")
    return block["text"]


def _message_items(message: AnthropicMessage) -> list[InputData]:
    if message.role not in ("user", "assistant"):
        raise BadRequestError(f"messages have role user or assistant, not '{message.role}'")
    role = "user_prompt" if message.role == "user" else "assistant_reply"
    if isinstance(message.content, str):
        return [InputData(type="text", role=role, data=message.content)]
    texts: list[str] = []
    results: list[InputData] = []
    images: list[InputData] = []
    calls: list[dict[str, Any]] = []
    for block in message.content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            texts.append(_text_of(block, "content"))
        elif kind == "image" and message.role == "user":
            images.append(_image(block))
        elif kind == "tool_result" and message.role == "user":
            results.append(_tool_result(block))
        elif kind == "tool_use" and message.role == "assistant":
            if not isinstance(block.get("name"), str):
                raise BadRequestError("a tool_use block needs a name")
            calls.append(tool_call(block["name"], block.get("input") or {}, block.get("id")))
        elif kind in ("thinking", "redacted_thinking") and message.role == "assistant":
            continue  # earlier reasoning is not shown to the model again
        else:
            raise BadRequestError(f"content blocks of type '{kind}' are not supported in {message.role} messages")
    text = InputData(type="text", role=role, data="\n".join(texts), metadata={"tool_calls": calls} if calls else None)
    # Tool results answer the previous assistant turn: they come before this turn's own text.
    return [*results, *([text] if texts or calls or not results else []), *images]


def _image(block: dict[str, Any]) -> InputData:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return InputData(
            type="image", role="input_image", data=str(source.get("data", "")), mime_type=source.get("media_type")
        )
    if source.get("type") == "url":  # fetched by the core only where the operator allows it
        return InputData(type="image", role="input_image", data=str(source.get("url", "")))
    raise BadRequestError("image blocks need a source of type base64 or url")


def _tool_result(block: dict[str, Any]) -> InputData:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise BadRequestError("a tool_result block needs tool_use_id")
    content = block.get("content") or ""
    text = content if isinstance(content, str) else "\n".join(_text_of(part, "tool_result content") for part in content)
    if block.get("is_error"):
        text = f"Error: {text}"
    return InputData(type="text", role=TOOL_RESULT_ROLE, data=text, metadata={"tool_call_id": call_id})


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise BadRequestError(
            f"server tools ({tool.get('type')}) are not supported: send custom tools with input_schema"
        )
    function = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _tool_choice(choice: dict[str, Any]) -> dict[str, Any]:
    kind = choice.get("type")
    parameters: dict[str, Any] = {}
    if kind == "tool":
        parameters["tool_choice"] = {"type": "function", "function": {"name": str(choice.get("name", ""))}}
    elif kind in TOOL_CHOICES:
        parameters["tool_choice"] = TOOL_CHOICES[kind]
    else:
        raise BadRequestError(f"tool_choice type '{kind}' is not one of auto, any, tool, none")
    if choice.get("disable_parallel_tool_use"):
        parameters["parallel_tool_calls"] = False
    return parameters


def _usage(metadata: Mapping[str, Any]) -> dict[str, int]:
    usage = metadata.get("usage") or {}
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
    }


def message_object(request_id: str, model: str, outputs: list[OutputData]) -> dict[str, Any]:
    """The complete answer as Anthropic's message object."""
    texts = [output for output in outputs if output.type == "text"]
    calls = [output.data for output in outputs if output.type == FUNCTION_CALL and is_client_call(output.data)]
    if not texts and not calls:
        errors = [str(output.data) for output in outputs if output.type == "error"]
        if errors:
            raise BackendFailedError("; ".join(errors))
    text = "".join(str(output.data) for output in texts)
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text or not calls else []
    content += [
        {"type": "tool_use", "id": call["id"], "name": call["name"], "input": arguments_object(call["arguments"])}
        for call in calls
    ]
    metadata = (
        next((output.metadata for output in outputs if output.metadata and "usage" in output.metadata), None) or {}
    )
    reason = "tool_calls" if calls else metadata.get("finish_reason", "stop")
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(reason, "end_turn"),
        "stop_sequence": None,
        "usage": _usage(metadata),
    }


async def message_events(
    events: AsyncIterator[GenerationEvent], request_id: str, model: str
) -> AsyncIterator[dict[str, Any]]:
    """Our stream as Anthropic's events: message_start, content blocks (text, tool_use), message_delta, message_stop."""
    start: dict[str, Any] = {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }
    yield {"type": "message_start", "message": start}
    index, text_open = 0, False
    async for event in events:
        if isinstance(event, TextDelta) and event.text:
            if not text_open:
                yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
                text_open = True
            yield {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": event.text}}
        elif isinstance(event, SideEvent) and event.kind == FUNCTION_CALL and is_client_call(event.content):
            if text_open:
                yield {"type": "content_block_stop", "index": index}
                index, text_open = index + 1, False
            call = event.content
            block = {"type": "tool_use", "id": call["id"], "name": call["name"], "input": {}}
            yield {"type": "content_block_start", "index": index, "content_block": block}
            delta = {"type": "input_json_delta", "partial_json": call["arguments"]}
            yield {"type": "content_block_delta", "index": index, "delta": delta}
            yield {"type": "content_block_stop", "index": index}
            index += 1
        elif isinstance(event, SideEvent) and event.kind == "error":
            raise BackendFailedError(str(event.content))
        elif isinstance(event, Completed):
            if text_open:
                yield {"type": "content_block_stop", "index": index}
            reason = STOP_REASONS.get(event.metadata.get("finish_reason", "stop"), "end_turn")
            yield {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": _usage(event.metadata),
            }
            yield {"type": "message_stop"}


def anthropic_error_event(exc: BaseException, request_id: str | None) -> dict[str, Any]:
    """The event that ends a failed stream; the anthropic SDK raises it as an APIStatusError."""
    return {"type": "error", "error": {"type": "api_error", "message": stream_error_message(exc, request_id)}}
