"""The server-side tool loop's bounds, with a real FunctionManager and a model (a fake ``generate``) that calls tools
whatever tool_choice says, many at once, as some models do."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from lollms_server.core.functions import FunctionManager
from lollms_server.core.tool_loop import run_tool_loop

TOOLS = '''
from pathlib import Path


async def mark(path: str) -> str:
    """Writes ``path``."""
    Path(path).write_text("run")
    return "marked"
'''


async def test_calls_past_the_time_budget_are_not_run(tmp_path: Path) -> None:
    """A round may hold many calls, each allowed server.function_timeout: past the loop's budget none is run."""
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "marks.py").write_text(textwrap.dedent(TOOLS))
    functions = FunctionManager([(folder, "personal")])
    functions.discover()
    marker = tmp_path / "marker"

    async def generate(input_data: list[dict[str, Any]], parameters: dict[str, Any]) -> list[dict[str, Any]]:
        arguments = f'{{"path": "{marker}"}}'
        call = {"type": "function_call", "data": {"id": "call_1", "name": "marks__mark", "arguments": arguments}}
        return [call, call, call]

    context = {"request_info": {}, "generate": generate, "function_manager": functions}
    try:
        events = [event async for event in run_tool_loop(context, "go", {}, ["marks.mark"], time_budget=0.0)]
    finally:
        await functions.close()
    results = [event["content"]["result"] for event in events if event["type"] == "function_call"]
    assert results == ["error: not run: the tool loop's 0 s are spent"] * 3 * 4  # 3 calls in each of 4 rounds
    assert not marker.exists()
    assert events[-1] == {"type": "error", "content": "no answer after 4 rounds of tool calls"}
