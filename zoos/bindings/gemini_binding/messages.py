"""Our conversation and parameters as the JSON body of a Gemini ``generateContent`` request (REST v1beta); a Gemini
answer (the same JSON, decoded) as our text, thoughts, calls and usage. Plain dictionaries, built and read
directly: the SDK's typed models cost more than the rest of a relayed request (bench/README.md)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from google.genai import types

from lollms_server.core.errors import BadRequestError
from lollms_server.core.tools import arguments_object, tool_call

ROLES = {"user": "user", "assistant": "model", "tool": "user"}  # a tool's result answers as the user's turn
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# Normalized parameter -> (generationConfig field, the kind of value it takes). repeat_penalty / repeat_last_n have
# no Gemini equivalent.
PARAMETERS: dict[str, tuple[str, type]] = {
    "max_tokens": ("maxOutputTokens", int),
    "temperature": ("temperature", float),
    "top_k": ("topK", int),
    "top_p": ("topP", float),
    "seed": ("seed", int),
    "presence_penalty": ("presencePenalty", float),
    "frequency_penalty": ("frequencyPenalty", float),
}
IMAGE_SIGNATURES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}


@dataclass
class GeminiRequest:
    """The JSON body of a generateContent / streamGenerateContent request."""

    body: dict[str, Any]


def parse_safety_settings(entries: list[str]) -> list[dict[str, str]]:
    """``CATEGORY:THRESHOLD`` entries as safetySettings; ValueError names every wrong entry and the valid names."""
    categories = {name for name in types.HarmCategory.__members__ if name != "HARM_CATEGORY_UNSPECIFIED"}
    thresholds = {name for name in types.HarmBlockThreshold.__members__ if not name.endswith("UNSPECIFIED")}
    settings, problems = [], []
    for entry in entries:
        category, _, threshold = (part.strip().upper() for part in str(entry).partition(":"))
        if category and not category.startswith("HARM_CATEGORY_"):
            category = f"HARM_CATEGORY_{category}"
        if category in categories and threshold in thresholds:
            settings.append({"category": category, "threshold": threshold})
        else:
            problems.append(repr(entry))
    if problems:
        raise ValueError(
            f"safety_settings: invalid entries {', '.join(problems)}; each must be CATEGORY:THRESHOLD with a "
            f"category among {', '.join(sorted(categories))} and a threshold among {', '.join(sorted(thresholds))}"
        )
    return settings


def _sniff(raw: bytes) -> str | None:
    """The type of an image by its signature (clients often leave mime_type out)."""
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in IMAGE_SIGNATURES.items() if raw.startswith(signature)), None)


def inline_part(raw: bytes, mime_type: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime_type, "data": base64.b64encode(raw).decode("ascii")}}


def _image_part(item: Any) -> dict[str, Any]:
    """An inline-data part of an image item (the core hands bindings base64 with its mime type)."""
    raw = item.binary()
    mime_type = item.mime_type or _sniff(raw)
    if not mime_type:
        raise BadRequestError("gemini_binding: image input needs a mime_type (image/png, image/jpeg, image/webp...)")
    return inline_part(raw, mime_type)


def _parts(message: dict[str, Any], call_names: dict[str, str]) -> list[dict[str, Any]]:
    """The parts of one message: its text, its tool calls (a model turn), or a tool's result (by the call's name)."""
    if message["role"] == "tool":
        call_id = message.get("tool_call_id")
        name = message.get("name") or call_names.get(call_id or "", "")
        response = {"name": name, "response": {"result": message["content"]}}
        return [{"functionResponse": {**({"id": call_id} if call_id else {}), **response}}]
    text = message.get("content")
    parts: list[dict[str, Any]] = [{"text": text or ""}] if text or not message.get("tool_calls") else []
    for call in message.get("tool_calls") or []:
        function = call["function"]
        call_names[call["id"]] = function["name"]
        arguments = arguments_object(function.get("arguments"))
        parts.append({"functionCall": {"id": call["id"], "name": function["name"], "args": arguments}})
    return parts


def build_contents(
    messages: list[dict[str, Any]], multimodal: list[Any] | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """(system instruction, contents): turns with roles user/model, the images on the last user turn."""
    system = "\n\n".join(message["content"] for message in messages if message["role"] == "system") or None
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}  # call id -> function name: Gemini's function responses go by name
    for message in messages:
        role = ROLES.get(message["role"])
        if role is None:
            continue
        parts = _parts(message, call_names)
        if contents and contents[-1]["role"] == role:  # one turn per speaker: the API alternates roles
            contents[-1]["parts"] += parts
        else:
            contents.append({"role": role, "parts": parts})
    images = []
    for item in multimodal or []:
        if item.type != "image":
            raise BadRequestError(f"gemini_binding takes text and image input; got {item.type} (role '{item.role}')")
        images.append(_image_part(item))
    if images:
        if not contents or contents[-1]["role"] != "user":
            contents.append({"role": "user", "parts": []})
        # Images before the text of their turn, as Google's prompting guide advises.
        contents[-1]["parts"] = [*images, *contents[-1]["parts"]]
    return system, contents


def _number(key: str, value: Any, kind: type) -> int | float:
    """``value`` as the ``kind`` of number a parameter takes; BadRequestError otherwise."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or (kind is int and value != int(value))
    ):
        expected = "an integer" if kind is int else "a number"
        raise BadRequestError(f"gemini_binding: invalid parameters: {key}: {value!r} is not {expected}")
    return kind(value)


def _stop_sequences(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(stop, str) for stop in stops):
        raise BadRequestError(f"gemini_binding: invalid parameters: stop: {value!r} is not a string or strings")
    return stops


def build_body(
    system: str | None,
    contents: list[dict[str, Any]],
    params: dict[str, Any],
    safety: list[dict[str, str]],
    thoughts: bool,
    aspect_ratio: str | None = None,
    images: bool = False,
) -> dict[str, Any]:
    """The generateContent body of a request (``images``: the model answers with images too, in ``aspect_ratio``);
    BadRequestError when a parameter has an unusable value."""
    given = [key for key in PARAMETERS if params.get(key) is not None]
    generation: dict[str, Any] = {PARAMETERS[key][0]: _number(key, params[key], PARAMETERS[key][1]) for key in given}
    if generation.get("seed", 0) < 0:  # -1 means "random" in our vocabulary: let the backend choose
        del generation["seed"]
    if params.get("stop") is not None:
        generation["stopSequences"] = _stop_sequences(params["stop"])
    if images:
        generation["responseModalities"] = ["TEXT", "IMAGE"]
        if aspect_ratio:
            generation["imageConfig"] = {"aspectRatio": aspect_ratio}
    if thoughts:
        generation["thinkingConfig"] = {"includeThoughts": True}
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if safety:
        body["safetySettings"] = safety
    if generation:
        body["generationConfig"] = generation
    # The client runs its tools: every call comes back to it (no automatic function calling on this side).
    body.update(tool_options(params))
    return body


def tool_options(params: dict[str, Any]) -> dict[str, Any]:
    """``tools`` and ``toolConfig`` of a request with tools (our OpenAI-shaped tools as function declarations)."""
    tools = params.get("tools")
    if not tools:
        return {}
    declarations = []
    for tool in tools:
        declaration = {
            "name": tool["function"]["name"],
            "parametersJsonSchema": tool["function"].get("parameters") or {"type": "object"},
        }
        if tool["function"].get("description"):
            declaration["description"] = tool["function"]["description"]
        declarations.append(declaration)
    choice = params.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        calling: dict[str, Any] = {"mode": "ANY", "allowedFunctionNames": [name]}
    else:
        calling = {"mode": TOOL_MODES.get(choice, "AUTO")}
    return {"tools": [{"functionDeclarations": declarations}], "toolConfig": {"functionCallingConfig": calling}}


# --- answers -------------------------------------------------------------------------------------------
def answer_parts(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The parts of the first candidate of a response or stream chunk."""
    candidates = response.get("candidates") or [{}]
    return list((candidates[0].get("content") or {}).get("parts") or [])


def call_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The function calls of a response or stream chunk as our function_call events."""
    events = []
    for part in answer_parts(response):
        call = part.get("functionCall")
        if call is not None:
            content = tool_call(call.get("name") or "", dict(call.get("args") or {}), call.get("id"))
            events.append({"type": "function_call", "content": content})
    return events


def text_and_thoughts(response: dict[str, Any]) -> tuple[str, str]:
    """(answer text, reasoning text) of the first candidate of a response or stream chunk."""
    text: list[str] = []
    thoughts: list[str] = []
    for part in answer_parts(response):
        if part.get("text"):
            (thoughts if part.get("thought") else text).append(part["text"])
    return "".join(text), "".join(thoughts)


def finish_reason(response: dict[str, Any]) -> str | None:
    """ "stop", "length" (MAX_TOKENS), else the lowercased Gemini reason (e.g. "safety"); None while streaming."""
    candidates = response.get("candidates") or [{}]
    reason = candidates[0].get("finishReason")
    if reason is None:
        reason = (response.get("promptFeedback") or {}).get("blockReason")  # the prompt itself was blocked
    if reason is None:
        return None
    return FINISH_REASONS.get(str(reason), str(reason).lower())


def usage_of(metadata: dict[str, Any]) -> dict[str, int]:
    """Our usage dict; completion tokens include the reasoning tokens (Google bills them as output)."""
    prompt = int(metadata.get("promptTokenCount") or 0)
    completion = int(metadata.get("candidatesTokenCount") or 0) + int(metadata.get("thoughtsTokenCount") or 0)
    total = int(metadata.get("totalTokenCount") or prompt + completion)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
