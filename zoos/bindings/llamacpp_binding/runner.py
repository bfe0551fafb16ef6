"""Streaming a blocking llama.cpp completion from a worker thread to the event loop, cancellably."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from lollms_server.core.thread_stream import Emit, stream_from_thread

from .tool_calls import grammar_text


def chat_pieces(llm: Any, messages: list[dict[str, Any]], options: dict[str, Any]) -> Callable[[], Iterator[Any]]:
    """Start a chat completion (the model's chat template applies); pieces via ``piece_of``."""
    return lambda: llm.create_chat_completion(messages=messages, stream=True, **options)


def tool_pieces(
    llm: Any, messages: list[dict[str, Any]], options: dict[str, Any], mode: Any
) -> Callable[[], Iterator[Any]]:
    """A chat completion whose sampling follows the grammar of ``mode``'s tool calls (built in the worker)."""

    def start() -> Iterator[Any]:
        from llama_cpp.llama_grammar import LlamaGrammar

        grammar = LlamaGrammar.from_string(grammar_text(mode), verbose=False)
        return llm.create_chat_completion(messages=messages, stream=True, grammar=grammar, **options)  # type: ignore[no-any-return]

    return start


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
    ``hand_over_every`` seconds (0: every token; a token waits at most until the next one is due) — except the
    first text and the first token after a pause, which go at once.
    Each hand-over wakes the event loop, which on a machine whose cores llama.cpp keeps busy costs
    generation speed (bench/README.md). When the consumer stops (client gone, error), the thread stops
    after its current token and this generator waits for it: the model never serves two threads at once.
    """

    def work(emit: Emit, stop: threading.Event) -> None:
        pending: list[tuple[str, str | None]] = []
        last = 0.0
        text_sent = False
        completion = start()
        try:
            for chunk in completion:
                if stop.is_set():
                    break
                piece = piece_of(chunk)
                pending.append(piece)
                now = time.monotonic()
                # The first text goes out at once (a chat stream begins with an empty role chunk, which must not
                # use up the hand-over and hold the first token back); so does the first after a pause.
                first_text = bool(piece[0]) and not text_sent
                if first_text or now - last >= hand_over_every:
                    text_sent = text_sent or any(text for text, _ in pending)
                    emit(pending)
                    pending, last = [], now
        finally:
            completion.close()
        if pending:
            emit(pending)

    async with contextlib.aclosing(stream_from_thread(work)) as batches:
        async for batch in batches:
            for piece in batch:
                yield piece
