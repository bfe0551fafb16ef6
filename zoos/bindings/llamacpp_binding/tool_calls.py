"""Tool calling for local models: the tools are described in the system message, and a grammar built from their
JSON schemas constrains sampling, so even a small model emits calls that parse against the tool's schema.

- ``required`` (or a named tool): the whole answer is one call, ``{"name": ..., "arguments": {...}}``.
- ``auto``: the answer is either free text (which cannot begin with ``<``) or ``<tool_call>{...}</tool_call>``:
  the model chooses, and its first character tells which.
- ``none`` (or no tools): the model answers in text; earlier calls and results stay in the conversation.

Earlier calls and results are written into the conversation as text (``<tool_call>`` in the assistant turn,
``<tool_response>`` in a user turn, the convention of Hermes and Qwen models), which every chat template renders.
One call per answer: llama.cpp samples one sequence, and a small model chains calls badly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from lollms_server.core.tools import arguments_object, tool_call

OPEN, CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ToolMode:
    tools: list[dict[str, Any]]  # {"type": "function", "function": {...}} each
    required: bool


def tool_mode(params: dict[str, Any]) -> ToolMode | None:
    """How the request lets the model use tools; None: it answers in text."""
    tools = params.get("tools") or []
    choice = params.get("tool_choice") or "auto"
    if not tools or choice == "none":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return ToolMode([tool for tool in tools if tool["function"]["name"] == name], required=True)
    return ToolMode(list(tools), required=choice == "required")


MAX_ENUMERATED_RANGE = 256  # an integer range this small becomes an enum the grammar can enforce
TOOL_ATTEMPTS = 3  # a call the grammar could not hold to its schema (numeric bounds...) is sampled again


def _enforceable(schema: Any) -> Any:
    """``schema`` with what llama-cpp-python's grammar converter ignores made explicit where it can be: small
    integer ranges (minimum/maximum) become enums. The rest is checked after sampling (``schema_problem``)."""
    if isinstance(schema, list):
        return [_enforceable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _enforceable(value) for key, value in schema.items()}
    low, high = schema.get("minimum"), schema.get("maximum")
    if schema.get("type") == "integer" and isinstance(low, int) and isinstance(high, int):
        if 0 <= high - low < MAX_ENUMERATED_RANGE:
            return {"enum": list(range(low, high + 1))}
    return schema


def call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON schema of one call to any of ``tools``, as the grammar is built from it."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": tool["function"]["name"]},
                "arguments": _enforceable(tool["function"].get("parameters") or {"type": "object"}),
            },
            "required": ["name", "arguments"],
        }
        for tool in tools
    ]
    return options[0] if len(options) == 1 else {"oneOf": options}


def grammar_request(mode: ToolMode) -> tuple[dict[str, Any], str | None]:
    """What the grammar of an answer in ``mode`` is built from (``grammars.GrammarBuilder.build``): the JSON schema
    of one call, and the root rule that frames it when the model may also answer in text (None: a call only)."""
    return call_schema(mode.tools), None if mode.required else CALL_OR_TEXT


# A call between the markers, or text that does not start like one (the call's own rules are ``schema-root``).
CALL_OR_TEXT = f'root ::= "{OPEN}" schema-root "{CLOSE}" | free-text\nfree-text ::= [^<\\x00] [^\\x00]*'


def tools_system_message(mode: ToolMode) -> str:
    described = [
        {
            "name": tool["function"]["name"],
            "description": tool["function"].get("description") or "",
            "parameters": tool["function"].get("parameters") or {"type": "object"},
        }
        for tool in mode.tools
    ]
    listing = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in described)
    if mode.required:
        how = 'Answer with exactly one tool call, as JSON: {"name": <tool name>, "arguments": {...}}.'
    else:
        how = (
            f'To call a tool, answer only with {OPEN}{{"name": <tool name>, "arguments": {{...}}}}{CLOSE}. '
            "Otherwise answer the user directly."
        )
    return f"You can call these tools:\n{listing}\n{how}"


def with_tools(messages: list[dict[str, Any]], mode: ToolMode | None) -> list[dict[str, Any]]:
    """The conversation as plain chat turns: earlier calls and results as text, the tools in the system message."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            calls = "".join(
                OPEN
                + json.dumps(
                    {"name": call["function"]["name"], "arguments": arguments_object(call["function"].get("arguments"))}
                )
                + CLOSE
                for call in message["tool_calls"]
            )
            turns.append({"role": "assistant", "content": (message.get("content") or "") + calls})
        elif message["role"] == "tool":
            turns.append(
                {"role": "user", "content": f"<tool_response>\n{message.get('content') or ''}\n</tool_response>"}
            )
        else:
            turns.append({"role": message["role"], "content": message.get("content") or ""})
    if mode is None:
        return turns
    instructions = tools_system_message(mode)
    if turns and turns[0]["role"] == "system":
        return [{"role": "system", "content": f"{turns[0]['content']}\n\n{instructions}"}, *turns[1:]]
    return [{"role": "system", "content": instructions}, *turns]


def parse_call(text: str, mode: ToolMode) -> dict[str, Any] | None:
    """The call in an answer made under ``mode``'s grammar ({"name", "arguments": JSON text}), or None for text."""
    body = text.strip()
    if not mode.required:
        if not body.startswith(OPEN):
            return None
        body = body[len(OPEN) :].removesuffix(CLOSE)
    try:
        call = json.loads(body)
    except ValueError:
        return None  # cut by max_tokens before the call was complete
    if not isinstance(call, dict) or not isinstance(call.get("name"), str):
        return None
    return {"name": call["name"], "arguments": json.dumps(call.get("arguments", {}), ensure_ascii=False)}


def schema_problem(call: dict[str, Any], mode: ToolMode) -> str | None:
    """Why the call's arguments do not satisfy its tool's schema (what the grammar could not enforce), or None."""
    import jsonschema

    tool = next((tool for tool in mode.tools if tool["function"]["name"] == call["name"]), None)
    if tool is None:
        return f"'{call['name']}' is not one of the tools"
    try:
        jsonschema.validate(json.loads(call["arguments"]), tool["function"].get("parameters") or {"type": "object"})
    except jsonschema.ValidationError as exc:
        return f"{call['name']}: {exc.message}"
    except jsonschema.SchemaError as exc:
        return f"{call['name']}: its parameters are not a valid JSON schema ({exc.message})"
    return None


class ToolAnswer:
    """Turns the pieces of an answer into our chunks: text as it comes, or (when the answer is a call) one
    ``function_call`` event at the end. Under ``auto`` the first character decides; without tools, all is text."""

    def __init__(self, mode: ToolMode | None) -> None:
        self.mode = mode
        self.held: list[str] | None = [] if mode is not None else None  # pieces kept while it may be a call
        self.is_call = mode is not None and mode.required

    def feed(self, piece: str) -> list[dict[str, Any]]:
        if self.held is None:
            return [{"type": "chunk", "content": piece}]
        self.held.append(piece)
        if self.is_call:
            return []
        text = "".join(self.held).lstrip()
        if not text:
            return []
        if text.startswith("<"):
            self.is_call = True
            return []
        self.held = None  # free text: stream it from here on
        return [{"type": "chunk", "content": text}]

    def end(self, last_attempt: bool = True) -> list[dict[str, Any]] | None:
        """The chunks that end the answer; None when its call is unusable and another attempt may do better."""
        if self.held is None or self.mode is None:
            return []
        text = "".join(self.held)
        if not self.is_call:
            return [{"type": "chunk", "content": text}] if text else []
        call = parse_call(text, self.mode)
        if call is None:
            problem = "the answer ended before the call was complete (raise max_tokens)"
        else:
            problem = schema_problem(call, self.mode)
        if problem is None and call is not None:
            return [{"type": "function_call", "content": tool_call(call["name"], call["arguments"])}]
        if not last_attempt:
            return None
        return [{"type": "error", "content": f"the model's tool call is not valid: {problem}"}]
