"""Running a generation stream in a task of its own from its first step.

The endpoint can then wait briefly for the stream's first event before it answers: a failure that comes
at once (a backend that refuses the key, is unreachable, rate limits) gets its real status code instead
of an ``error`` event after a 200. The whole stream runs in that one task, so context set while it runs
(the compute slot it holds) stays consistent from start to end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

_QUEUE_SIZE = 1024  # back-pressure on the generation when the client reads slowly


class End:
    """The last item of a pump's queue: the stream finished, or failed with ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class ChunkPump:
    """Pumps ``chunks`` into ``queue`` (ending with an ``End``) from a task; ``events()`` reads them back,
    ``close()`` stops it all."""

    def __init__(self, chunks: AsyncIterator[Any], name: str) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(_QUEUE_SIZE)
        self._started = asyncio.Event()
        self._first: Any = None
        self._task = asyncio.create_task(self._run(chunks), name=name)

    async def _put(self, item: Any) -> None:
        if self._first is None:
            self._first = item
            self._started.set()
        await self.queue.put(item)

    async def _run(self, chunks: AsyncIterator[Any]) -> None:
        end = End()
        try:
            async for chunk in chunks:
                await self._put(chunk)
        except Exception as exc:
            end = End(exc)
        await self._put(end)

    async def raise_early_failure(self, wait: float) -> None:
        """Wait up to ``wait`` seconds for the first event; raise the stream's error if it failed before it."""
        with contextlib.suppress(TimeoutError), anyio.fail_after(wait):
            await self._started.wait()
        if isinstance(self._first, End) and self._first.error is not None:
            raise self._first.error

    async def events(self) -> AsyncIterator[Any]:
        """The stream's chunks; its failure is raised after the chunks that came before it."""
        while True:
            item = await self.queue.get()
            if isinstance(item, End):
                if item.error is not None:
                    raise item.error
                return
            yield item

    async def close(self) -> None:
        """Stop the stream (a no-op once it ended) and wait until its cleanup has run."""
        self._task.cancel()
        with anyio.CancelScope(shield=True), contextlib.suppress(asyncio.CancelledError):
            await self._task
