"""The threads models compute on: work that does not overlap always lands on the same thread (one OpenMP team stays
warm), overlapping work gets threads of its own that end once idle, results and errors come back, a cancelled
caller still waits for its step, and shutdown ends everything."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from lollms_server.core import compute_threads as module
from lollms_server.core.compute_threads import ComputeThreads, run_compute
from lollms_server.core.thread_stream import stream_from_thread


@pytest.fixture
def threads() -> Iterator[ComputeThreads]:
    pool = ComputeThreads(name="test-compute", idle_seconds=0.05)
    yield pool
    pool.shutdown()


def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll a state (not a time) until it holds; a 60 s deadline turns a hang into a failure."""
    deadline = time.monotonic() + 60
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def current_thread_name() -> str:
    return threading.current_thread().name


def test_work_that_does_not_overlap_runs_on_one_thread(threads: ComputeThreads) -> None:
    names = {threads.submit(current_thread_name).result() for _ in range(20)}
    assert names == {"test-compute-0"}
    assert threads.thread_count() == 1


def test_overlapping_work_gets_another_thread_which_ends_once_idle(threads: ComputeThreads) -> None:
    release = threading.Event()
    started = threading.Barrier(3)

    def hold() -> str:
        started.wait(timeout=60)
        release.wait(timeout=60)
        return current_thread_name()

    first, second = threads.submit(hold), threads.submit(hold)
    started.wait(timeout=60)  # both run at once: two threads
    assert threads.thread_count() == 2
    release.set()
    assert {first.result(), second.result()} == {"test-compute-0", "test-compute-1"}
    # The thread that finished last stays warm and takes the next job; the other ends after its idle time.
    wait_until(lambda: threads.thread_count() == 1, "the extra thread to end")
    warm = {threads.submit(current_thread_name).result() for _ in range(5)}
    assert len(warm) == 1 and threads.thread_count() == 1


def test_a_job_submitted_the_moment_the_last_one_ends_goes_to_the_same_thread(threads: ComputeThreads) -> None:
    # The follow-up is submitted from the first job's done callback, which runs in the worker as the result is
    # handed over: the worker must be idle (and warm) by then, or a second thread starts for work that does not
    # overlap (a caller awaiting the result and submitting at once races the worker the same way).
    release = threading.Event()
    follow_up: list[Future[str]] = []

    def first_job() -> str:
        release.wait(timeout=60)
        return current_thread_name()

    first = threads.submit(first_job)
    first.add_done_callback(lambda _: follow_up.append(threads.submit(current_thread_name)))
    release.set()
    name = first.result()
    wait_until(lambda: bool(follow_up), "the follow-up to be submitted")
    assert follow_up[0].result() == name
    assert threads.thread_count() == 1


def test_the_warm_thread_outlives_its_idle_time(threads: ComputeThreads) -> None:
    name = threads.submit(current_thread_name).result()
    worker = next(iter(threads._workers))
    assert worker.thread is not None
    idle_periods: list[bool] = []  # what each idle period's end decided: True would end the thread
    retire = threads._retire

    def counted_retire(worker: Any) -> bool:
        idle_periods.append(retire(worker))
        return idle_periods[-1]

    threads._retire = counted_retire  # type: ignore[method-assign]
    wait_until(lambda: len(idle_periods) >= 10, "ten idle periods to go by")
    assert not any(idle_periods) and worker.thread.is_alive()
    assert threads.submit(current_thread_name).result() == name


def test_errors_reach_the_caller_and_the_thread_serves_on(threads: ComputeThreads) -> None:
    def broken() -> None:
        raise ValueError("broken model")

    with pytest.raises(ValueError, match="broken model"):
        threads.submit(broken).result()
    assert threads.submit(lambda: 41 + 1).result() == 42
    assert threads.thread_count() == 1


def test_shutdown_ends_the_threads_and_refuses_work() -> None:
    pool = ComputeThreads(name="test-shutdown", idle_seconds=60)
    pool.submit(current_thread_name).result()
    workers = list(pool._workers)
    pool.shutdown()
    assert all(worker.thread is not None and not worker.thread.is_alive() for worker in workers)
    assert pool.thread_count() == 0
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(current_thread_name)


async def test_run_compute_and_streams_share_the_warm_thread(
    threads: ComputeThreads, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "compute_threads", threads)
    monkeypatch.setattr("lollms_server.core.thread_stream.compute_threads", threads)

    def work(emit: Any, stop: threading.Event) -> None:
        emit(current_thread_name())

    names = {await run_compute(current_thread_name)}
    for _ in range(3):
        names.update([item async for item in stream_from_thread(work)])
    assert names == {"test-compute-0"}


async def test_a_cancelled_caller_waits_for_the_step(threads: ComputeThreads, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "compute_threads", threads)
    running, release, done = threading.Event(), threading.Event(), threading.Event()

    def step() -> None:
        running.set()
        release.wait(timeout=60)
        done.set()

    task = asyncio.create_task(run_compute(step))
    await asyncio.to_thread(running.wait, 60)
    task.cancel()
    await asyncio.sleep(0)  # the cancellation is delivered; the shielded wait goes on
    assert not task.done()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done.is_set()
