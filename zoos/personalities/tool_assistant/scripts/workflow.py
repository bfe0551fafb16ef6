"""tool_assistant: the model gets math_tools.evaluate and datetime_tools.now as tools; the server runs the calls
it makes and feeds the results back until it answers (lollms_server.core.tool_loop)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from lollms_server.core.tool_loop import run_tool_loop

FUNCTIONS = ["math_tools.evaluate", "datetime_tools.now"]


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    # A client may insist on a call (use_tools: "required"): small models seldom choose one by themselves.
    first_choice = params.pop("use_tools", "auto")
    async for event in run_tool_loop(context, prompt, params, FUNCTIONS, first_choice=first_choice):
        yield event
