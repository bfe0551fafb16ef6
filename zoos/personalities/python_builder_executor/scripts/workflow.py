"""python_builder_executor: let the model write a program, run it in the sandbox, return code and output."""

from __future__ import annotations

import re
from typing import Any

from lollms_server.core.code_runner import run_python, sandbox_problem, sandbox_unavailable_reason
from lollms_server.core.errors import UnavailableError

CODE_BLOCK = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.DOTALL)
TIMEOUT_SECONDS = 10.0


def unavailable_reason() -> str | None:
    """Checked once when the personality loads: without a sandbox it is listed unavailable (503), with why."""
    return sandbox_unavailable_reason()


def extract_code(text: str) -> str:
    match = CODE_BLOCK.search(text)
    return (match.group(1) if match else text).strip()


def _cannot_run(reason: str) -> dict[str, Any]:
    return {"type": "error", "data": f"python_builder_executor cannot run code on this server: {reason}"}


async def run_workflow(prompt: str, params: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    # Checked first so the model is not asked for a program that could not run; never run without a sandbox.
    problem = await sandbox_problem()
    if problem:
        return [_cannot_run(problem)]
    system = context["request_info"]["system_prompt"]
    written = await context["generate_text"](prompt, system_prompt=system, **params)
    code = extract_code(written)
    if not code:
        return [{"type": "error", "data": "The model wrote no code."}]
    shown = {"type": "text", "data": f"```python\n{code}\n```"}
    try:
        result = await run_python(code, timeout=TIMEOUT_SECONDS, limits=context["config"].sandbox_limits)
    except UnavailableError as exc:
        return [shown, _cannot_run(str(exc))]
    if result.stopped:
        summary = result.stopped
    elif result.timed_out:
        summary = f"timed out after {TIMEOUT_SECONDS:g}s"
    else:
        summary = f"exit code {result.exit_code}"
    return [
        shown,
        {
            "type": "json",
            "data": {
                "stdout": result.stdout,
                "stderr": result.stderr,
                "exit_code": result.exit_code,
                "timed_out": result.timed_out,
                "stopped": result.stopped,
            },
            "metadata": {"summary": summary},
        },
    ]
