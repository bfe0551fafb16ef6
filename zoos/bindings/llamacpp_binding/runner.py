"""Streaming a blocking llama.cpp completion from a worker thread to the event loop, cancellably."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio

_DONE = object()


def chat_pieces(llm: Any, messages: list[dict[str, Any]], options: dict[str, Any]) -> Callable[[], Iterator[Any]]:
    """Start a chat completion (the model's chat template applies); pieces via ``piece_of``."""
    return lambda: llm.create_chat_completion(messages=messages, stream=True, **options)


def completion_pieces(llm: Any, prompt: str, options: dict[str, Any]) -> Callable[[], Iterator[Any]]:
    """Start a raw text completion of ``prompt`` (no chat template)."""
    return lambda: llm.create_completion(prompt=prompt, stream=True, **options)


def piece_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    choice = chunk["choices"][0]
    text = choice["delta"].get("content") if "delta" in choice else choice.get("text")
    return text or "", choice.get("finish_reason")


async def stream_pieces(
    start: Callable[[], Iterator[Any]], hand_over_every: float = 0.0
) -> AsyncIterator[tuple[str, str | None]]:
    """Yield (text piece, finish_reason) per generated token of the completion ``start`` begins.

    The completion runs in a worker thread that hands tokens to the loop, at most once every
    ``hand_over_every`` seconds (0: every token; a token waits at most until the next one is due).
    Each hand-over wakes the event loop, which on a machine whose cores llama.cpp keeps busy costs
    generation speed (bench/README.md). When the consumer stops (client gone, error), the thread stops
    after its current token and this generator waits for it: the model never serves two threads at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def hand_over(item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening any more
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        pending: list[tuple[str, str | None]] = []
        last = 0.0
        try:
            completion = start()
            try:
                for chunk in completion:
                    if stop.is_set():
                        break
                    pending.append(piece_of(chunk))
                    now = time.monotonic()
                    if now - last >= hand_over_every:
                        hand_over(pending)
                        pending, last = [], now
            finally:
                completion.close()
            if pending:
                hand_over(pending)
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
            for piece in item:
                yield piece
    finally:
        stop.set()
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await worker
