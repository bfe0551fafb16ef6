"""Running one blocking diffusers call in a worker thread: progress to the event loop, stop on request."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from lollms_server.core.thread_stream import Emit, stream_from_thread


@dataclass(frozen=True)
class Step:
    """One denoising step done (1-based) of ``total``."""

    step: int
    total: int


@dataclass(frozen=True)
class Done:
    result: Any


class Stopped(Exception):
    """Raised inside the denoising loop (from the step callback) when nobody waits for the images any more."""


async def run_with_progress(
    call: Callable[[Callable[..., Any]], Any],
) -> AsyncIterator[Step | Done]:
    """Run ``call(on_step_end)`` in a worker thread; yield a ``Step`` after each denoising step, then
    ``Done(result)``. When the consumer stops (client gone, cancellation), the next step raises ``Stopped`` in the
    worker and this generator waits for the thread: a pipeline never serves two threads at once."""

    def work(emit: Emit, stop: threading.Event) -> None:
        def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
            if stop.is_set():
                raise Stopped
            emit(Step(step + 1, int(getattr(pipe, "num_timesteps", 0) or 0)))
            return callback_kwargs

        emit(Done(call(on_step_end)))

    async with contextlib.aclosing(stream_from_thread(work)) as items:
        async for item in items:
            yield item
