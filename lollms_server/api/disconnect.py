"""Stopping work whose client has gone away (non-streaming requests and the prelude of streams)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the work finished; the work was cancelled."""


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


# Work that ends sooner than this never starts a watcher: most requests pay no task and no cancellation
# (whose garbage cycles cost more than the rest of a fast request); a disconnect is noticed this much later.
WATCH_AFTER_SECONDS = 0.02


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work`` in this task; if the client disconnects first, cancel it and raise ClientGone.

    The work's own cleanup (a binding stopping its thread, a slot released) runs before this returns.
    """
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("until_disconnect must run inside a task")
    gone = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal gone
        await _wait_for_disconnect(request)
        gone = True
        task.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.create_task(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_SECONDS, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not gone:
            raise
        if hasattr(task, "uncancel"):  # Python 3.11+: this cancellation has been handled
            task.uncancel()
        raise ClientGone() from None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()
