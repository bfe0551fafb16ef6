"""The threads in-process models compute on (llama.cpp, torch, ONNX...): one stays warm, others live only while
work overlaps.

Why not the event loop's default executor or anyio's worker threads: OpenMP, which llama.cpp and torch use,
keeps a team of worker threads for every thread that ever started parallel work, and when the teams of a process
outnumber its cores, libgomp stops its workers from spin-waiting between steps. A model that ran once on two
executor threads generated at half speed from then on (bench/README.md, "one compute thread"). Here the thread
that finished last takes the next piece of work, so work that does not overlap always runs on the same thread and
the same OpenMP team; a thread started for overlapping work ends after a short idle time, and its team with it.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

import anyio

T = TypeVar("T")

_Job = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class _Worker:
    __slots__ = ("jobs", "thread")

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class ComputeThreads(Executor):
    """An executor whose most recently idle thread takes the next job (last in, first out). The thread that
    finished last never ends; any other ends once it has been idle for ``idle_seconds``."""

    def __init__(self, name: str = "compute", idle_seconds: float = 2.0) -> None:
        self._name = name
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []  # the last one is the warmest
        self._workers: set[_Worker] = set()
        self._numbers = itertools.count()
        self._closed = False

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the compute threads are shut down")
            worker = self._idle.pop() if self._idle else self._start_worker()
        worker.jobs.put((future, fn, args, kwargs))
        return future

    def thread_count(self) -> int:
        with self._lock:
            return len(self._workers)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Idle threads end now, busy ones after their job; ``submit`` refuses new work."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            workers = list(self._workers)
        for worker in idle:
            worker.jobs.put(None)
        if wait:
            for worker in workers:
                if worker.thread is not None and worker.thread is not threading.current_thread():
                    worker.thread.join()

    def _start_worker(self) -> _Worker:  # under self._lock
        worker = _Worker()
        worker.thread = threading.Thread(
            target=self._serve, args=(worker,), name=f"{self._name}-{next(self._numbers)}", daemon=True
        )
        self._workers.add(worker)
        worker.thread.start()
        return worker

    def _serve(self, worker: _Worker) -> None:
        while True:
            try:
                job = worker.jobs.get(timeout=self._idle_seconds)
            except queue.Empty:
                if self._retire(worker):
                    return
                continue
            if job is None:
                break
            future, fn, args, kwargs = job
            outcome: tuple[bool, Any] | None = None
            if future.set_running_or_notify_cancel():
                try:
                    outcome = (True, fn(*args, **kwargs))
                except BaseException as exc:  # handed to whoever waits on the future
                    outcome = (False, exc)
            # Idle again before the outcome is handed over: a caller that waits for it and submits its next job
            # at once finds this warm thread, instead of racing it and starting another.
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(worker)
            if outcome is not None:
                if outcome[0]:
                    future.set_result(outcome[1])
                else:
                    future.set_exception(outcome[1])
            del job, future, fn, args, kwargs, outcome  # nothing of the job outlives it
            if closed:
                break
        with self._lock:
            self._workers.discard(worker)

    def _retire(self, worker: _Worker) -> bool:
        """After an idle wait: end ``worker`` unless it is the warmest idle thread or a job is on its way."""
        with self._lock:
            if worker not in self._idle or self._idle[-1] is worker:
                return False
            self._idle.remove(worker)
            self._workers.discard(worker)
            return True


compute_threads = ComputeThreads()


async def run_compute(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a compute thread. A cancelled caller still waits for the thread to finish (a model must not
    be freed under a running step), then the cancellation goes on."""
    return await outlast_cancellation(asyncio.wrap_future(compute_threads.submit(fn, *args)))


async def outlast_cancellation(future: asyncio.Future[T]) -> T:
    """``future``'s result once it has ended, however often the caller is cancelled meanwhile (by anyio's scopes,
    as Starlette does, or by ``Task.cancel``); a cancellation that came is raised after the end."""
    cancelled = False
    with anyio.CancelScope(shield=True):
        while True:
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                if future.done():  # the future itself was cancelled, not its waiter
                    raise
                cancelled = True
                continue
            break
    if cancelled:
        raise asyncio.CancelledError
    return result
