"""Server-side tools: a personality offers FunctionManager functions to the model as tools, and the server runs
the call loop itself — the model calls, the server executes, the results go back — bounded in rounds and time
(a call started before the time budget ends may still take server.function_timeout; later calls are not run).

Each call the server runs is visible in the stream: a ``function_call`` event whose content has the call and
its ``result`` (so no client mistakes it for a call it must run), then an ``info`` event. The last round allows
no more calls, so the loop always ends with an answer.
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import create_model

from lollms_server.core.tools import TOOL_RESULT_ROLE

MAX_ROUNDS = 4
TIME_BUDGET_SECONDS = 120.0
MAX_RESULT_CHARS = 8000  # what one result may add to the conversation
WIRE_SEPARATOR = "__"  # function names hold a dot, which OpenAI's tool names may not: math_tools__evaluate


def wire_name(name: str) -> str:
    return name.replace(".", WIRE_SEPARATOR)


def function_tools(functions: Any, names: list[str]) -> list[dict[str, Any]]:
    """The tools of registered functions: JSON schemas from their signatures, descriptions from their docstrings."""
    tools = []
    for name in names:
        registered = functions.functions.get(name)
        if registered is None:
            raise ValueError(f"unknown function '{name}'; available: {', '.join(functions.list_functions())}")
        fields = {
            parameter.name: (
                Any if parameter.annotation is inspect.Parameter.empty else parameter.annotation,
                ... if parameter.default is inspect.Parameter.empty else parameter.default,
            )
            for parameter in registered.signature.parameters.values()
            if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
        }
        schema = create_model(wire_name(name), **fields).model_json_schema()  # type: ignore[call-overload]
        schema.pop("title", None)
        for field in schema.get("properties", {}).values():
            field.pop("title", None)
        description = inspect.getdoc(registered.function) or ""
        tools.append(
            {
                "type": "function",
                "function": {"name": wire_name(name), "description": description, "parameters": schema},
            }
        )
    return tools


async def run_tool_loop(
    context: Mapping[str, Any],
    prompt: str,
    params: Mapping[str, Any],
    names: list[str],
    first_choice: Any = "auto",
    max_rounds: int = MAX_ROUNDS,
    time_budget: float = TIME_BUDGET_SECONDS,
) -> AsyncIterator[dict[str, Any]]:
    """For a scripted workflow: answer ``prompt`` with the functions ``names`` as tools, running the calls the
    model makes (``context["generate"]`` for each round, ``context["function_manager"]`` for each call)."""
    functions = context["function_manager"]
    tools = function_tools(functions, names)
    by_wire_name = {wire_name(name): name for name in names}
    system = context["request_info"].get("system_prompt")
    items: list[dict[str, Any]] = [{"type": "text", "role": "system_context", "data": system}] if system else []
    items.append({"type": "text", "role": "user_prompt", "data": prompt})
    deadline = time.monotonic() + time_budget
    base = {key: value for key, value in params.items() if key not in ("tools", "tool_choice", "parallel_tool_calls")}
    for round_number in range(max_rounds):
        last = round_number == max_rounds - 1 or time.monotonic() >= deadline
        choice = "none" if last else (first_choice if round_number == 0 else "auto")
        outputs = await context["generate"](
            input_data=items, parameters={**base, "tools": tools, "tool_choice": choice}
        )
        calls = [output["data"] for output in outputs if output["type"] == "function_call"]
        if not calls:
            for output in outputs:
                if output["type"] == "text" and output.get("data"):
                    yield {"type": "chunk", "content": output["data"]}
                elif output["type"] in ("error", "info"):
                    yield {"type": output["type"], "content": output.get("data")}
            return
        items.append({"type": "text", "role": "assistant_reply", "data": "", "metadata": {"tool_calls": calls}})
        for call in calls:
            name = by_wire_name.get(call["name"], call["name"])
            if time.monotonic() < deadline:
                result = await _execute(functions, name, call["arguments"])
            else:  # a round may hold many calls, each allowed server.function_timeout: the budget bounds them all
                result = f"error: not run: the tool loop's {time_budget:g} s are spent"
            yield {"type": "function_call", "content": {**call, "name": name, "result": result}}
            yield {"type": "info", "content": f"{name} returned: {result}"}
            items.append(
                {"type": "text", "role": TOOL_RESULT_ROLE, "data": result, "metadata": {"tool_call_id": call["id"]}}
            )
    yield {"type": "error", "content": f"no answer after {max_rounds} rounds of tool calls"}


async def _execute(functions: Any, name: str, arguments: str) -> str:
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return f"error: the arguments of {name} are not JSON"
    ok, value = await functions.execute_function(name, parsed if isinstance(parsed, dict) else {})
    try:
        text = str(value) if ok else f"error: {value}"
    except ValueError as exc:  # an int of more than 4,300 digits has no str()
        text = f"error: the result of {name} cannot be shown: {exc}"
    return text[:MAX_RESULT_CHARS]
