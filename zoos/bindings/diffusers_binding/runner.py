"""Running one blocking diffusers call in a worker thread: progress to the event loop, stop on request."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import anyio


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
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def hand_over(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def on_step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        if stop.is_set():
            raise Stopped
        hand_over(Step(step + 1, int(getattr(pipe, "num_timesteps", 0) or 0)))
        return callback_kwargs

    def work() -> None:
        try:
            result = call(on_step_end)
            hand_over(Done(result))
        except BaseException as exc:  # delivered to the consumer, raised there
            hand_over(exc)

    worker = loop.run_in_executor(None, work)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Done):
                return
    finally:
        stop.set()
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await worker
