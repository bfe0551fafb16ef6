"""Streaming a blocking llama.cpp completion from a worker thread to the event loop, cancellably."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio

_DONE = object()


async def stream_chat(
    llm: Any, messages: list[dict[str, str]], options: dict[str, Any]
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (text piece, finish_reason) per generated token.

    The completion runs in a worker thread that hands each token to the loop as it comes. When the
    consumer stops (client gone, error), the thread is told to stop after its current token and this
    generator waits for it, so the model is never used by two threads at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def hand_over(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            completion = llm.create_chat_completion(messages=messages, stream=True, **options)
            try:
                for chunk in completion:
                    if stop.is_set():
                        break
                    choice = chunk["choices"][0]
                    hand_over((choice["delta"].get("content") or "", choice.get("finish_reason")))
            finally:
                completion.close()
            hand_over(_DONE)
        except BaseException as exc:  # delivered to the consumer, raised there
            hand_over(exc)

    worker = loop.run_in_executor(None, work)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await worker
