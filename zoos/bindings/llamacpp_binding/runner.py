"""Streaming a blocking llama.cpp completion from a worker thread to the event loop, cancellably."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

from lollms_server.core.thread_stream import Emit, stream_from_thread

from .interrupt import DecodeInterrupt


def chat_pieces(
    llm: Any, messages: list[dict[str, Any]], options: dict[str, Any], grammar: str | None
) -> Callable[[], Iterator[Any]]:
    """Start a chat completion (the model's chat template applies), its sampling held to ``grammar`` (GBNF text
    from ``grammars.GrammarBuilder``) if given; pieces via ``piece_of``."""

    def start() -> Iterator[Any]:
        from llama_cpp.llama_grammar import LlamaGrammar

        constraint = None if grammar is None else LlamaGrammar.from_string(grammar, verbose=False)
        return llm.create_chat_completion(messages=messages, stream=True, grammar=constraint, **options)  # type: ignore[no-any-return]

    return start


def completion_pieces(llm: Any, prompt: str, options: dict[str, Any]) -> Callable[[], Iterator[Any]]:
    """Start a raw text completion of ``prompt`` (no chat template)."""
    return lambda: llm.create_completion(prompt=prompt, stream=True, **options)


def piece_of(chunk: dict[str, Any]) -> tuple[str, str | None]:
    choice = chunk["choices"][0]
    text = choice["delta"].get("content") if "delta" in choice else choice.get("text")
    return text or "", choice.get("finish_reason")


class Batch(NamedTuple):
    """The tokens handed over at once: their text joined, how many carried text, and the finish reason if the
    completion ended in them."""

    text: str
    tokens: int
    finish_reason: str | None


async def stream_batches(
    start: Callable[[], Iterator[Any]], hand_over_every: float = 0.0, interrupt: DecodeInterrupt | None = None
) -> AsyncIterator[Batch]:
    """Yield the tokens of the completion ``start`` begins, a batch per hand-over.

    The completion runs on a compute thread that hands tokens to the loop at most once every ``hand_over_every``
    seconds (0: every token; a token waits at most until the next one is due) — except the first text and the
    first token after a pause, which go at once. A batch is one piece of text downstream (one event to encode,
    send and parse instead of one per token): each wake of the event loop, and each event, takes CPU from
    llama.cpp's threads on a machine whose cores they keep busy (bench/README.md). When the consumer stops
    (client gone, error), the thread stops after its current token, or inside the prompt's evaluation through
    ``interrupt`` (the model's ``DecodeInterrupt``), and this generator waits for it: the model never serves two
    threads at once.
    """

    def work(emit: Emit, stop: threading.Event) -> None:
        pending: list[tuple[str, str | None]] = []
        # Nothing handed over yet: the first piece is due whatever the clock says (time.monotonic() counts from
        # boot on Linux, so a start at 0.0 would hold it back on a machine up for less than hand_over_every).
        last = -math.inf
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
                    emit(_batch(pending))
                    pending, last = [], now
        finally:
            completion.close()
        if pending:
            emit(_batch(pending))

    if interrupt is not None:
        interrupt.arm()
    on_stop = interrupt.fire if interrupt is not None else None
    async with contextlib.aclosing(stream_from_thread(work, on_stop)) as batches:
        async for batch in batches:
            yield batch


def _batch(pieces: list[tuple[str, str | None]]) -> Batch:
    finish = next((reason for _, reason in reversed(pieces) if reason), None)
    return Batch("".join(text for text, _ in pieces), sum(1 for text, _ in pieces if text), finish)
