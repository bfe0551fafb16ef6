"""OpenAI requests as our GenerationRequest, our outputs and stream chunks as OpenAI objects."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from lollms_server.api.models import InputData, OutputData
from lollms_server.api.openai_compat.protocol import ChatCompletionRequest, ChatMessage, SamplingFields
from lollms_server.api.streaming import stream_error_message
from lollms_server.api.wire_fields import refuse
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.errors import BackendFailedError, BadRequestError
from lollms_server.core.events import Completed, GenerationEvent, SideEvent, TextDelta
from lollms_server.core.model_ids import ModelIds
from lollms_server.core.tools import (
    FUNCTION_CALL,
    TOOL_CALLS_FINISH,
    TOOL_RESULT_ROLE,
    is_client_call,
    openai_tool_calls,
    tool_call,
)

ROLE_OF_MESSAGE = {
    "system": "system_context",
    "developer": "system_context",
    "user": "user_prompt",
    "assistant": "assistant_reply",
    "tool": TOOL_RESULT_ROLE,
}
_SAMPLING = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "top_k",
    "repeat_penalty",
    "repeat_last_n",
    "min_p",
)


def _image(url: str) -> InputData:
    """An image part: a data: or http(s) URL, which the core decodes or fetches (as the server allows)."""
    return InputData(type="image", role="input_image", data=url)


def _message_items(message: ChatMessage) -> list[InputData]:
    role = ROLE_OF_MESSAGE.get(message.role)
    if role is None:
        raise BadRequestError(f"messages with role '{message.role}' are not supported")
    refuse(message, message.REFUSED)
    metadata = _tool_metadata(message)
    if message.content is None or isinstance(message.content, str):
        return [InputData(type="text", role=role, data=message.content or "", metadata=metadata)]
    texts, images = [], []
    for part in message.content:
        if part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            images.append(_image(str((part.get("image_url") or {}).get("url", ""))))
        else:
            raise BadRequestError(f"content parts of type '{part.get('type')}' are not supported")
    return [InputData(type="text", role=role, data="\n".join(texts), metadata=metadata), *images]


def _tool_metadata(message: ChatMessage) -> dict[str, Any] | None:
    """An assistant message's tool calls, or the call id a tool message answers, as our item metadata."""
    if message.role == "tool":
        if not message.tool_call_id:
            raise BadRequestError("a message with role 'tool' needs tool_call_id")
        return {"tool_call_id": message.tool_call_id, **({"name": message.name} if message.name else {})}
    if message.role == "assistant" and message.tool_calls:
        calls = []
        for call in message.tool_calls:
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("name"), str):
                raise BadRequestError("each tool_calls entry needs function.name (and id, function.arguments)")
            calls.append(tool_call(function["name"], str(function.get("arguments") or "{}"), call.get("id")))
        return {"tool_calls": calls}
    return None


def sampling_parameters(request: SamplingFields) -> dict[str, Any]:
    parameters = {key: getattr(request, key) for key in _SAMPLING if getattr(request, key) is not None}
    if request.max_tokens is not None:
        parameters["max_tokens"] = request.max_tokens
    if request.stop is not None:
        parameters["stop"] = [request.stop] if isinstance(request.stop, str) else request.stop
    return parameters


def _response_format(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value or value.get("type") == "text":
        return None
    if value.get("type") not in ("json_object", "json_schema"):
        raise BadRequestError(f"response_format type '{value.get('type')}' is not supported (json_object, json_schema)")
    return value


def refuse_unsupported(request: SamplingFields) -> None:
    """400 for the first field the request uses that would change the answer and that this server cannot honour."""
    refuse(request, request.REFUSED)


def generate_request(
    request: SamplingFields, items: list[InputData], model_ids: ModelIds, extra: dict[str, Any]
) -> GenerationRequest:
    """Our request for an OpenAI one: the model id picks binding, model and maybe personality."""
    choice = model_ids.parse(request.model)
    return GenerationRequest(
        input_data=items,
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        personality=request.personality or choice.personality,
        stream=request.stream,
        parameters={**sampling_parameters(request), **extra},
    )


def chat_request(request: ChatCompletionRequest, model_ids: ModelIds) -> GenerationRequest:
    refuse_unsupported(request)  # before the messages, which a request with tools may fill with tool calls
    items = [item for message in request.messages for item in _message_items(message)]
    extra: dict[str, Any] = {}
    if request.max_completion_tokens is not None:
        extra["max_tokens"] = request.max_completion_tokens
    response_format = _response_format(request.response_format)
    if response_format:
        extra["response_format"] = response_format
    for field_name in ("tools", "tool_choice", "parallel_tool_calls"):  # checked by the core, like every parameter
        if getattr(request, field_name) is not None:
            extra[field_name] = getattr(request, field_name)
    if request.reasoning_effort is not None:  # the same parameter as Ollama's think (bool or a level)
        extra["think"] = False if request.reasoning_effort == "none" else request.reasoning_effort
    return generate_request(request, items, model_ids, extra)


def answer_text(outputs: list[OutputData]) -> tuple[str, str | None, dict[str, Any]]:
    """(content, reasoning, metadata) of our outputs; a run that produced only errors is a backend failure."""
    texts = [output for output in outputs if output.type == "text"]
    if not texts and not calls_of(outputs):
        errors = [str(output.data) for output in outputs if output.type == "error"]
        if errors:
            raise BackendFailedError("; ".join(errors))
    content = "".join(str(output.data) for output in texts)
    thoughts = "\n\n".join(output.thoughts for output in texts if output.thoughts) or None
    metadata = next((output.metadata for output in outputs if output.metadata and "usage" in output.metadata), None)
    return content, thoughts, metadata or ((texts[0].metadata or {}) if texts else {})


def calls_of(outputs: list[OutputData]) -> list[dict[str, Any]]:
    """The tool calls among our outputs (``{"id", "name", "arguments"}`` each)."""
    return [output.data for output in outputs if output.type == FUNCTION_CALL and is_client_call(output.data)]


def usage_of(metadata: dict[str, Any]) -> dict[str, int]:
    usage = metadata.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def chat_completion(request_id: str, model: str, outputs: list[OutputData]) -> dict[str, Any]:
    content, thoughts, metadata = answer_text(outputs)
    calls = calls_of(outputs)
    message: dict[str, Any] = {"role": "assistant", "content": content or (None if calls else "")}
    if thoughts:
        message["reasoning_content"] = thoughts
    finish = metadata.get("finish_reason", "stop")
    if calls:
        message["tool_calls"] = openai_tool_calls(calls)
        finish = TOOL_CALLS_FINISH
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage_of(metadata),
    }


def text_completion(request_id: str, model: str, outputs: list[OutputData]) -> dict[str, Any]:
    content, _, metadata = answer_text(outputs)
    return {
        "id": f"cmpl-{request_id}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "text": content, "finish_reason": metadata.get("finish_reason", "stop"), "logprobs": None}
        ],
        "usage": usage_of(metadata),
    }


async def chat_chunks(
    events: AsyncIterator[GenerationEvent], request_id: str, model: str, include_usage: bool, chat: bool = True
) -> AsyncIterator[dict[str, Any]]:
    """Our stream's events as OpenAI chunk objects (chat.completion.chunk or text_completion)."""
    base = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{request_id}",
        "created": int(time.time()),
        "model": model,
        "object": "chat.completion.chunk" if chat else "text_completion",
    }

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body = {"delta": delta} if chat else {"text": delta.get("content", ""), "logprobs": None}
        return {**base, "choices": [{"index": 0, **body, "finish_reason": finish}]}

    announced = not chat  # the role chunk goes out with the first event, so an early failure has none before it
    calls = 0
    async for event in events:
        if not announced:
            yield choice({"role": "assistant", "content": ""})
            announced = True
        if isinstance(event, TextDelta):
            delta: dict[str, Any] = {"content": event.text}
            if event.thoughts:
                delta["reasoning_content"] = event.thoughts
            yield choice(delta)
        elif isinstance(event, SideEvent) and event.kind == FUNCTION_CALL and chat and is_client_call(event.content):
            # As OpenAI streams a call: its id and name first, then the arguments (the SDK joins the pieces).
            call, index = event.content, calls
            calls += 1
            yield choice({"tool_calls": [_call_delta(index, id=call["id"], type="function", name=call["name"])]})
            yield choice({"tool_calls": [_call_delta(index, arguments=call["arguments"])]})
        elif isinstance(event, SideEvent) and event.kind == "error":
            raise BackendFailedError(str(event.content))
        elif isinstance(event, Completed):
            yield choice({}, event.metadata.get("finish_reason", "stop"))
            if include_usage:
                yield {**base, "choices": [], "usage": usage_of(event.metadata)}


def _call_delta(index: int, name: str | None = None, arguments: str = "", **fields: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function = {"name": name, **function}
    return {"index": index, **fields, "function": function}


def openai_error_event(exc: BaseException, request_id: str | None) -> dict[str, Any]:
    """The event that ends a failed stream; the openai SDK raises it as an APIError."""
    return {"error": {"message": stream_error_message(exc, request_id), "type": "server_error", "code": None}}


def encode_embedding(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # little-endian float32, what the openai SDK decodes by default
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return vector
