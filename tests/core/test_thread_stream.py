"""The one hand-over from worker threads to the event loop: order, errors after what came before them, and a
consumer that stops makes the work stop and is not left behind by it."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest

from lollms_server.core.thread_stream import stream_from_thread


async def test_items_arrive_in_order_then_the_stream_ends() -> None:
    def work(emit: Any, stop: threading.Event) -> None:
        for index in range(1000):
            emit(index)

    assert [item async for item in stream_from_thread(work)] == list(range(1000))


async def test_an_error_comes_after_the_items_before_it() -> None:
    def work(emit: Any, stop: threading.Event) -> None:
        emit("first")
        raise ValueError("broken model")

    seen = []
    with pytest.raises(ValueError, match="broken model"):
        async for item in stream_from_thread(work):
            seen.append(item)
    assert seen == ["first"]


async def test_a_consumer_that_stops_stops_the_work_and_waits_for_it() -> None:
    steps: list[int] = []
    finished = threading.Event()

    def work(emit: Any, stop: threading.Event) -> None:
        try:
            index = 0
            while not stop.is_set():  # endless unless told to stop
                steps.append(index)
                emit(index)
                index += 1
                stop.wait(0.001)
        finally:
            finished.set()

    async with contextlib.aclosing(stream_from_thread(work)) as items:
        async for item in items:
            if item == 3:
                break
    # aclose returned only after the thread ended: nothing runs on after the consumer left.
    assert finished.is_set() and len(steps) >= 4


async def test_a_consumer_that_stops_interrupts_a_step_that_never_checks_stop() -> None:
    # A step inside C code cannot look at ``stop``: ``on_stop`` reaches it from outside the thread.
    interrupted = threading.Event()

    def work(emit: Any, stop: threading.Event) -> None:
        emit("started")
        assert interrupted.wait(timeout=300), "on_stop was never called"  # the long step, ended from outside

    async with contextlib.aclosing(stream_from_thread(work, on_stop=interrupted.set)) as items:
        async for item in items:
            assert item == "started"
            break
    assert interrupted.is_set()
