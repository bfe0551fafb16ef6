"""Our conversation and parameters as a Gemini request; a Gemini answer as our text, thoughts and usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.genai import types
from pydantic import ValidationError

from lollms_server.core.errors import BadRequestError
from lollms_server.core.tools import arguments_object, tool_call

ROLES = {"user": "user", "assistant": "model", "tool": "user"}  # a tool's result answers as the user's turn
TOOL_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
# Normalized parameter -> GenerateContentConfig field. repeat_penalty / repeat_last_n have no Gemini equivalent.
PARAMETERS = {
    "max_tokens": "max_output_tokens",
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop_sequences",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
}
IMAGE_SIGNATURES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"GIF8": "image/gif"}
FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}


@dataclass
class GeminiRequest:
    contents: list[types.Content]
    config: types.GenerateContentConfig


def parse_safety_settings(entries: list[str]) -> list[types.SafetySetting]:
    """``CATEGORY:THRESHOLD`` entries as SafetySettings; ValueError names every wrong entry and the valid names."""
    categories = {name for name in types.HarmCategory.__members__ if name != "HARM_CATEGORY_UNSPECIFIED"}
    thresholds = {name for name in types.HarmBlockThreshold.__members__ if not name.endswith("UNSPECIFIED")}
    settings, problems = [], []
    for entry in entries:
        category, _, threshold = (part.strip().upper() for part in str(entry).partition(":"))
        if category and not category.startswith("HARM_CATEGORY_"):
            category = f"HARM_CATEGORY_{category}"
        if category in categories and threshold in thresholds:
            settings.append(
                types.SafetySetting(
                    category=types.HarmCategory(category), threshold=types.HarmBlockThreshold(threshold)
                )
            )
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


def _image_part(item: Any) -> types.Part:
    """An inline-data part of an image item (the core hands bindings base64 with its mime type)."""
    raw = item.binary()
    mime_type = item.mime_type or _sniff(raw)
    if not mime_type:
        raise BadRequestError("gemini_binding: image input needs a mime_type (image/png, image/jpeg, image/webp...)")
    return types.Part.from_bytes(data=raw, mime_type=mime_type)


def _parts(message: dict[str, Any], call_names: dict[str, str]) -> list[types.Part]:
    """The parts of one message: its text, its tool calls (a model turn), or a tool's result (by the call's name)."""
    if message["role"] == "tool":
        name = message.get("name") or call_names.get(message.get("tool_call_id", ""), "")
        response = types.FunctionResponse(
            id=message.get("tool_call_id"), name=name, response={"result": message["content"]}
        )
        return [types.Part(function_response=response)]
    parts = (
        [types.Part.from_text(text=message["content"])]
        if message.get("content") or not message.get("tool_calls")
        else []
    )
    for call in message.get("tool_calls") or []:
        function = call["function"]
        call_names[call["id"]] = function["name"]
        arguments = arguments_object(function.get("arguments"))
        parts.append(types.Part(function_call=types.FunctionCall(id=call["id"], name=function["name"], args=arguments)))
    return parts


def build_contents(
    messages: list[dict[str, Any]], multimodal: list[Any] | None
) -> tuple[str | None, list[types.Content]]:
    """(system instruction, contents): turns with roles user/model, the images on the last user turn."""
    system = "\n\n".join(message["content"] for message in messages if message["role"] == "system") or None
    contents: list[types.Content] = []
    call_names: dict[str, str] = {}  # call id -> function name: Gemini's function responses go by name
    for message in messages:
        role = ROLES.get(message["role"])
        if role is None:
            continue
        parts = _parts(message, call_names)
        if contents and contents[-1].role == role:  # one turn per speaker: the API alternates roles
            contents[-1].parts = [*(contents[-1].parts or []), *parts]
        else:
            contents.append(types.Content(role=role, parts=parts))
    images = []
    for item in multimodal or []:
        if item.type != "image":
            raise BadRequestError(f"gemini_binding takes text and image input; got {item.type} (role '{item.role}')")
        images.append(_image_part(item))
    if images:
        if not contents or contents[-1].role != "user":
            contents.append(types.Content(role="user", parts=[]))
        # Images before the text of their turn, as Google's prompting guide advises.
        contents[-1].parts = [*images, *(contents[-1].parts or [])]
    return system, contents


def build_config(
    system: str | None,
    params: dict[str, Any],
    safety: list[types.SafetySetting],
    thoughts: bool,
    image: types.ImageConfig | None = None,
) -> types.GenerateContentConfig:
    """The GenerateContentConfig of a request (``image``: the model answers with images too); BadRequestError
    when a parameter has an unusable value."""
    options = {field: params[key] for key, field in PARAMETERS.items() if params.get(key) is not None}
    if options.get("seed", 0) < 0:  # -1 means "random" in our vocabulary: let the backend choose
        del options["seed"]
    try:
        return types.GenerateContentConfig(
            system_instruction=system,
            safety_settings=safety or None,
            thinking_config=types.ThinkingConfig(include_thoughts=True) if thoughts else None,
            # The SDK's own round trips stay off: the client runs its tools, and a retry is our RetryPolicy's call.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            **tool_options(params),
            automatic_continuation=False,
            response_modalities=["TEXT", "IMAGE"] if image is not None else None,
            image_config=image if image is not None and image.aspect_ratio else None,
            **options,
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, error['loc']))}: {error['msg']}" for error in exc.errors())
        raise BadRequestError(f"gemini_binding: invalid parameters: {problems}") from None


def tool_options(params: dict[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_config`` of a request with tools (our OpenAI-shaped tools as function declarations)."""
    tools = params.get("tools")
    if not tools:
        return {}
    declarations = [
        types.FunctionDeclaration(
            name=tool["function"]["name"],
            description=tool["function"].get("description"),
            parameters_json_schema=tool["function"].get("parameters") or {"type": "object"},
        )
        for tool in tools
    ]
    choice = params.get("tool_choice") or "auto"
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        calling = types.FunctionCallingConfig(mode="ANY", allowed_function_names=[name])
    else:
        calling = types.FunctionCallingConfig(mode=TOOL_MODES.get(choice, "AUTO"))
    return {
        "tools": [types.Tool(function_declarations=declarations)],
        "tool_config": types.ToolConfig(function_calling_config=calling),
    }


# --- answers -------------------------------------------------------------------------------------------
def call_events(response: types.GenerateContentResponse) -> list[dict[str, Any]]:
    """The function calls of a response or stream chunk as our function_call events."""
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    return [
        {
            "type": "function_call",
            "content": tool_call(
                part.function_call.name or "", dict(part.function_call.args or {}), part.function_call.id
            ),
        }
        for part in parts or []
        if part.function_call is not None
    ]


def text_and_thoughts(response: types.GenerateContentResponse) -> tuple[str, str]:
    """(answer text, reasoning text) of the first candidate of a response or stream chunk."""
    candidate = response.candidates[0] if response.candidates else None
    parts = candidate.content.parts if candidate and candidate.content else None
    text: list[str] = []
    thoughts: list[str] = []
    for part in parts or []:
        if part.text:
            (thoughts if part.thought else text).append(part.text)
    return "".join(text), "".join(thoughts)


def finish_reason(response: types.GenerateContentResponse) -> str | None:
    """ "stop", "length" (MAX_TOKENS), else the lowercased Gemini reason (e.g. "safety"); None while streaming."""
    candidate = response.candidates[0] if response.candidates else None
    reason: Any = candidate.finish_reason if candidate else None
    if reason is None and response.prompt_feedback is not None:
        reason = response.prompt_feedback.block_reason  # the prompt itself was blocked: no candidate at all
    if reason is None:
        return None
    name = str(getattr(reason, "value", reason))
    return FINISH_REASONS.get(name, name.lower())


def usage_of(metadata: types.GenerateContentResponseUsageMetadata) -> dict[str, int]:
    """Our usage dict; completion tokens include the reasoning tokens (Google bills them as output)."""
    prompt = metadata.prompt_token_count or 0
    completion = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    total = metadata.total_token_count or prompt + completion
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
