"""tool_assistant: pick a function for the question, call it, and stream an answer built on its result."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

# An arithmetic expression: digits, operators, parentheses, and a few known function names.
EXPRESSION = re.compile(r"(?:\d|\(|sqrt|pi|sin|cos|log)[\d\s+\-*/%^().,a-z]*[\d)]")
TIME_WORDS = re.compile(r"\b(time|date|today|day is it|now)\b", re.IGNORECASE)


async def _tool_result(prompt: str, functions: Any) -> tuple[str, str] | None:
    match = EXPRESSION.search(prompt.lower())
    if match and re.search(r"[+\-*/%^]|sqrt|sin|cos|log", match.group(0)):
        expression = match.group(0).replace(",", ".").strip()
        ok, value = await functions.execute_function("math_tools.evaluate", {"expression": expression})
        return "math_tools.evaluate", f"{expression} = {value}" if ok else f"could not compute {expression}: {value}"
    if TIME_WORDS.search(prompt):
        ok, value = await functions.execute_function("datetime_tools.now", {})
        return "datetime_tools.now", f"the current date and time (UTC) is {value}" if ok else str(value)
    return None


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    tool = await _tool_result(prompt, context["function_manager"])
    if tool is None:
        yield {"type": "info", "content": "No tool applies; answering directly."}
        answer = await context["generate_text"](
            prompt, system_prompt=context["request_info"]["system_prompt"], **params
        )
        yield {"type": "chunk", "content": answer}
        return
    name, result = tool
    yield {"type": "function_call", "content": {"function": name, "result": result}}
    system = f"{context['request_info']['system_prompt'] or ''}\nTool result: {result}".strip()
    answer = await context["generate_text"](
        f"{prompt}\nAnswer using the tool result ({result}).", system_prompt=system, **params
    )
    yield {"type": "chunk", "content": f"{result}. {answer.strip()}"}
