"""Ollama requests as lollms GenerationRequests: messages, images, options, format, model ids."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from lollms_server.api.models import InputData
from lollms_server.api.ollama_compat.protocol import ChatBody, GenerateBody, OllamaBody, SamplingBody
from lollms_server.api.wire_fields import Refusal, refuse
from lollms_server.core.domain import GenerationRequest
from lollms_server.core.errors import BadRequestError
from lollms_server.core.model_ids import ModelIds
from lollms_server.core.tools import TOOL_RESULT_ROLE, arguments_object, tool_call

ROLES = {"system": "system_context", "user": "user_prompt", "assistant": "assistant_reply", "tool": TOOL_RESULT_ROLE}
# Ollama option -> our parameter.
OPTIONS = {
    "num_predict": "max_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "repeat_penalty": "repeat_penalty",
    "repeat_last_n": "repeat_last_n",
    "seed": "seed",
    "stop": "stop",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "tfs_z": "tfs_z",
    "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}
OPTION_OF_PARAMETER = {parameter: option for option, parameter in OPTIONS.items()}
# Options that configure how Ollama loads a model (and shifts its context): the binding instance's own
# configuration decides these here, so they are ignored on purpose.
LOAD_OPTIONS = frozenset(
    {
        "numa",
        "num_ctx",
        "num_batch",
        "num_gpu",
        "main_gpu",
        "low_vram",
        "f16_kv",
        "logits_all",
        "vocab_only",
        "use_mmap",
        "use_mlock",
        "embedding_only",
        "num_thread",
        "num_keep",
        "rope_frequency_base",
        "rope_frequency_scale",
    }
)
OPTION_REFUSALS = (
    Refusal("penalize_newline", bool, "options.penalize_newline is not supported by lollms_server's Ollama API"),
)
_KNOWN_OPTIONS = {*OPTIONS, *LOAD_OPTIONS, *(refusal.field for refusal in OPTION_REFUSALS)}
_IMAGE_SIGNATURES = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def response_format(format_: str | dict[str, Any] | None) -> dict[str, Any] | None:
    """Ollama's format ('json' or a JSON schema) in OpenAI's response_format shape."""
    if not format_:
        return None
    if format_ == "json":
        return {"type": "json_object"}
    if isinstance(format_, dict):
        return {"type": "json_schema", "json_schema": {"name": "schema", "schema": format_}}
    raise BadRequestError(f"format must be 'json' or a JSON schema object, not '{format_}'")


def refuse_unsupported(body: OllamaBody) -> None:
    """400 for the first field or option the request uses that would change the answer and cannot be honoured."""
    refuse(body, body.REFUSED)
    refuse(body.options or {}, OPTION_REFUSALS)
    for message in body.messages if isinstance(body, ChatBody) else ():
        refuse(message, message.REFUSED)


def ignored_options(body: OllamaBody) -> tuple[list[str], list[str]]:
    """(options that configure model loading, options Ollama does not define), as ``options.<name>``."""
    options = body.options or {}
    load = [f"options.{name}" for name in sorted(options) if name in LOAD_OPTIONS]
    unknown = [f"options.{name}" for name in sorted(options) if name not in _KNOWN_OPTIONS]
    return load, unknown


def parameters_of(body: SamplingBody) -> dict[str, Any]:
    """Options, format and think in the normalized parameter vocabulary."""
    parameters = {OPTIONS[key]: value for key, value in (body.options or {}).items() if key in OPTIONS}
    parameters = {key: value for key, value in parameters.items() if value is not None}
    # Ollama's num_predict -1 (unbounded) and -2 (fill the context) mean "no request limit" here.
    if isinstance(parameters.get("max_tokens"), int) and parameters["max_tokens"] < 1:
        del parameters["max_tokens"]
    formatted = response_format(body.format)
    if formatted:
        parameters["response_format"] = formatted
    if body.think is not None:
        parameters["think"] = body.think
    if isinstance(body, ChatBody) and body.tools:  # Ollama's tools are OpenAI's shape; the model decides (auto)
        parameters["tools"] = body.tools
    return parameters


def image_mime(data: str) -> str:
    """The image type from the first bytes of base64 data (PNG when unknown, Ollama's usual input)."""
    try:
        head = base64.b64decode(data[:16])
    except (binascii.Error, ValueError):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for signature, mime in _IMAGE_SIGNATURES if head.startswith(signature)), "image/png")


def image_items(images: list[str] | None) -> list[InputData]:
    return [InputData(type="image", role="input_image", data=data, mime_type=image_mime(data)) for data in images or []]


def chat_items(body: ChatBody) -> list[InputData]:
    """The messages in order, each message's images right after its text. Ollama's calls carry no ids: each
    call gets one, and each tool message answers the first call of the last assistant message not yet answered
    (the one of its ``tool_name`` when it names one)."""
    items: list[InputData] = []
    waiting: list[dict[str, Any]] = []  # the calls of the last assistant message, not yet answered
    for message in body.messages:
        role = ROLES.get(message.role)
        if role is None:
            raise BadRequestError(f"unsupported message role '{message.role}'; use {', '.join(ROLES)}")
        metadata: dict[str, Any] | None = None
        if message.role == "assistant" and message.tool_calls:
            waiting = [_call_of(call) for call in message.tool_calls]
            metadata = {"tool_calls": list(waiting)}
        elif message.role == "tool":
            answered = next((call for call in waiting if message.tool_name in (None, call["name"])), None)
            if answered is None:
                raise BadRequestError("a message with role 'tool' must follow an assistant message with tool_calls")
            waiting.remove(answered)
            metadata = {"tool_call_id": answered["id"], "name": answered["name"]}
        if message.content or metadata:
            items.append(InputData(type="text", role=role, data=message.content or "", metadata=metadata))
        items += image_items(message.images)
    return items


def _call_of(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequestError("each tool_calls entry needs function.name (and function.arguments)")
    arguments = function.get("arguments") or {}
    return tool_call(function["name"], arguments if isinstance(arguments, (dict, str)) else {})


def ollama_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our calls as Ollama's message.tool_calls (arguments as an object)."""
    return [{"function": {"name": call["name"], "arguments": arguments_object(call["arguments"])}} for call in calls]


def generate_items(body: GenerateBody) -> list[InputData]:
    """System and prompt (a raw prompt is completed as it is, so the system text does not apply)."""
    system = [] if body.raw or not body.system else [InputData(type="text", role="system_context", data=body.system)]
    prompt = InputData(type="text", role="user_prompt", data=body.prompt or "")
    return [*system, prompt, *image_items(body.images)]


def generate_request(
    model_id: str, model_ids: ModelIds, items: list[InputData], body: SamplingBody
) -> GenerationRequest:
    """Our request for a model id: binding and model, or a personality on the default text binding."""
    choice = model_ids.parse(model_id)
    return GenerationRequest(
        input_data=items,
        personality=choice.personality,
        binding_name=choice.binding_name,
        model_name=choice.model_name,
        stream=body.streams,
        parameters=parameters_of(body),
    )


def ollama_parameters(parameters: Mapping[str, Any]) -> str:
    """Parameters as the lines of a Modelfile's PARAMETER section (Ollama's /api/show 'parameters')."""
    lines = []
    for name, value in parameters.items():
        option = OPTION_OF_PARAMETER.get(name)
        for item in value if isinstance(value, list) else [value]:
            if option is not None and item is not None:
                lines.append(f'{option:<30} "{item}"' if isinstance(item, str) else f"{option:<30} {item}")
    return "\n".join(lines)
