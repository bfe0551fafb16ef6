"""Blocking work (a llama.cpp completion, a diffusion loop, a speech model) streamed from a worker thread to the
event loop, and stopped when nobody listens any more. Every in-process binding uses this one hand-over."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncGenerator, Callable
from typing import Any

from .compute_threads import compute_threads, outlast_cancellation

Emit = Callable[[Any], None]
Work = Callable[[Emit, threading.Event], Any]


class _End:
    """The last item of a run: ``error`` when the work raised."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def stream_from_thread(work: Work, on_stop: Callable[[], None] | None = None) -> AsyncGenerator[Any, None]:
    """Run ``work(emit, stop)`` on a compute thread (``compute_threads``) and yield every item it ``emit``s, in
    order; an exception it raises is raised here after the items emitted before it.

    The work should check ``stop`` between steps: it is set when the consumer stops (client gone, cancellation,
    error), and ``on_stop`` is called (to interrupt a step that takes long, from outside the thread); this
    generator then waits for the thread to finish, so a model never serves two threads at once. Each emit wakes
    the event loop: emit batches when items come faster than a few hundred a second.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def emit(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            work(emit, stop)
        except BaseException as exc:  # delivered to the consumer, raised there
            emit(_End(exc))
        else:
            emit(_End())

    worker = loop.run_in_executor(compute_threads, run)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        if on_stop is not None:
            on_stop()
        with contextlib.suppress(Exception):
            await outlast_cancellation(worker)
