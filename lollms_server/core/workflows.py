"""Running scripted personalities: ``async def run_workflow(prompt, params, context)`` (spec section 9).

A workflow may return a string, a dict, a list of dicts or an async generator of chunks; every shape is
turned into OutputData (complete answers) or StreamChunk-shaped dicts (streams), whatever the request
asked for. An exception becomes an ``error`` output; the server carries on.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from lollms_server.core.events import CHUNK_TYPES, OutputAccumulator, event_of, output_dicts

logger = logging.getLogger(__name__)


@dataclass
class WorkflowCall:
    """Everything a workflow run needs."""

    workflow: Callable[..., Any]
    personality_id: str
    prompt: str
    params: dict[str, Any]
    context: dict[str, Any]


def error_output(call: WorkflowCall, exc: BaseException) -> dict[str, Any]:
    logger.error("Workflow of personality '%s' failed", call.personality_id, exc_info=exc)
    return {
        "type": "error",
        "data": f"the workflow of personality '{call.personality_id}' failed: {type(exc).__name__}: {exc}",
    }


async def _start(call: WorkflowCall) -> Any:
    result = call.workflow(call.prompt, call.params, call.context)
    return await result if inspect.isawaitable(result) else result


async def _chunks_of(result: Any) -> AsyncIterator[dict[str, Any]]:
    """StreamChunk-shaped dicts of any workflow result; a non-stream result becomes one final chunk."""
    if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
        async for item in result:
            if isinstance(item, str):
                yield {"type": "chunk", "content": item}
            elif isinstance(item, dict) and item.get("type") in CHUNK_TYPES:
                yield item
            else:
                yield {"type": "final", "content": output_dicts(item)}
        return
    yield {"type": "final", "content": output_dicts(result)}


async def stream_workflow(call: WorkflowCall) -> AsyncIterator[dict[str, Any]]:
    """The workflow as a stream of chunks; a failure ends it with an ``error`` chunk."""
    try:
        async for chunk in _chunks_of(await _start(call)):
            yield chunk
    except Exception as exc:
        error = error_output(call, exc)
        yield {"type": "error", "content": error["data"]}


async def collect_workflow(call: WorkflowCall) -> list[dict[str, Any]]:
    """The workflow's complete outputs (a streaming workflow is read to its end)."""
    accumulator = OutputAccumulator(split_think=False)  # the pipeline splits <think> blocks itself
    async for chunk in stream_workflow(call):
        accumulator.add(event_of(chunk))
    return accumulator.outputs()
