"""Stopping work whose client has gone away (non-streaming requests and the prelude of streams)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

import anyio
from starlette.requests import Request

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before the work finished; the work was cancelled."""


async def _wait_for_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it (and waiting until it has stopped) if the client disconnects first."""
    work_task = asyncio.ensure_future(work)
    watcher = asyncio.create_task(_wait_for_disconnect(request))
    try:
        await asyncio.wait({work_task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work_task.done():
            work_task.cancel()
            # The binding's cleanup (stopping its thread, freeing the slot) must finish before we go on.
            with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
                await work_task
    if work_task.cancelled():
        raise ClientGone()
    return work_task.result()
