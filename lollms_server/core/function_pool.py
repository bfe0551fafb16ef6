"""The worker processes custom functions run in: a few spawned Pythons, each bounded in memory, killed and
replaced when a call outlives its time.

A function is user code: it may loop without ever yielding, call C code that holds the GIL, or allocate
without end. On the event loop any of these freezes the server; in a thread it cannot be stopped. In a worker
process (:mod:`lollms_server.core.function_worker`) it can: the call is given ``timeout`` seconds, then its
process group is killed (its own subprocesses with it) and the slot is free again; the address space limit
turns a runaway allocation into a MemoryError inside the worker, after which the worker is replaced too.

Workers start on demand and stay warm: the most recently used idle worker takes the next call. At most
``size`` calls run at once; another waits for a free worker, at most ``timeout`` seconds. Arguments and
results cross the process boundary pickled, a result up to ``function_worker.MAX_REPLY_BYTES``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pickle
import signal
import sys
from dataclasses import dataclass, field
from typing import Any

import anyio

from lollms_server.core.function_worker import FRAME_HEADER_BYTES, MAX_REPLY_BYTES, frame, frame_size
from lollms_server.core.secrets import ENCRYPTION_KEY_ENV

logger = logging.getLogger(__name__)

START_SECONDS = 120.0  # a worker imports every function file, and a file may import a large library
_THREAD_UNPICKLE_BYTES = 1 << 20  # larger results are unpickled off the event loop
BOOTSTRAP = (
    "import json, sys; config = json.loads(sys.argv[1]); sys.path[:] = config['sys_path']; "
    "from lollms_server.core.function_worker import main; main(config)"
)
MIB = 1 << 20


class FunctionCallError(Exception):
    """A call that gave no result; the message says why, for the caller (and the model) to read."""


class _WorkerLost(Exception):
    """The worker process ended or broke the protocol; the message says how."""


@dataclass(frozen=True)
class WorkerSettings:
    folders: tuple[tuple[str, str], ...]  # (folder, source) pairs, as the server discovered them
    memory_bytes: int


@dataclass(eq=False)
class _Worker:
    process: asyncio.subprocess.Process
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # set once reaped

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def call(self, request: bytes) -> tuple[Any, ...]:
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(frame(request))
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise _WorkerLost(await self._ending()) from None
        return await self.reply()

    async def reply(self) -> tuple[Any, ...]:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            size = frame_size(await stdout.readexactly(FRAME_HEADER_BYTES))
            if size > MAX_REPLY_BYTES:  # the worker checks its replies: this one broke the protocol
                raise _WorkerLost(f"it sent a reply of {size:,} bytes, over the {MAX_REPLY_BYTES:,} it may")
            payload = await stdout.readexactly(size)
        except asyncio.IncompleteReadError:
            raise _WorkerLost(await self._ending()) from None
        if size > _THREAD_UNPICKLE_BYTES:
            reply = await anyio.to_thread.run_sync(pickle.loads, payload)
        else:
            reply = pickle.loads(payload)
        if not isinstance(reply, tuple) or not reply:
            raise _WorkerLost("it sent a reply that is not one")
        return reply

    async def _ending(self) -> str:
        code = await self.process.wait()
        if code >= 0:
            return f"its process exited with status {code}"
        try:
            return f"its process was killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"its process was killed by signal {-code}"

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (its own process group). Signals only: Popen.kill would
        poll, and could reap the worker before asyncio's child watcher sees its exit status."""
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def reap(self) -> None:
        """Wait for a killed worker to be gone and its pipes closed (asyncio then closes the transport); only
        its owner may call this, once nobody else reads from it."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            if self.process.stdout is not None:
                while await self.process.stdout.read(65536):
                    pass  # what it wrote before it died: bounded by the pipe's buffer
            await self.process.wait()
            # asyncio closes the transport in callbacks queued by the steps above (stdin closed, the exit seen):
            # they run before this task resumes, so none is left for after the event loop.
            await asyncio.sleep(0)
        finally:
            self.gone.set()


@dataclass
class FunctionWorkers:
    """At most ``size`` worker processes; :meth:`call` runs one function call in one of them."""

    settings: WorkerSettings
    size: int = 2
    _slots: asyncio.Semaphore = field(init=False)
    _idle: list[_Worker] = field(default_factory=list, init=False)  # the last one is the warmest
    _workers: set[_Worker] = field(default_factory=set, init=False)
    _reaping: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.size)

    def worker_pids(self) -> list[int]:
        return sorted(worker.process.pid for worker in self._workers)

    async def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float) -> Any:
        """The function's result; FunctionCallError says why there is none (it raised, ran out of time or memory,
        its arguments or result cannot cross to or from the worker, no worker became free)."""
        try:
            request = pickle.dumps((name, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise FunctionCallError(
                f"the arguments of {name} cannot be sent to its worker process: {type(exc).__name__}: {exc}"
            ) from None
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise FunctionCallError(
                f"{name} was not started: all {self.size} function workers (server.function_workers) stayed busy "
                f"for {timeout:g}s"
            ) from None
        try:
            worker = await self._take()
            return await self._call_in(worker, name, request, timeout)
        finally:
            self._slots.release()

    async def _take(self) -> _Worker:
        while self._idle:
            worker = self._idle.pop()
            if worker.alive:
                return worker
            self._discard(worker)
        return await self._start()

    async def _call_in(self, worker: _Worker, name: str, request: bytes, timeout: float) -> Any:
        keep = False
        try:
            reply = await asyncio.wait_for(worker.call(request), timeout)
        except asyncio.TimeoutError:
            raise FunctionCallError(
                f"{name} did not finish within {timeout:g}s (server.function_timeout): it was stopped"
            ) from None
        except _WorkerLost as exc:
            raise FunctionCallError(f"{name} did not finish: {exc}") from None
        else:
            keep = reply[0] != "raised" or reply[1] != "MemoryError"  # a worker out of memory is not reused
            return self._result(name, reply)
        finally:
            if keep and not self._closed:
                self._idle.append(worker)
            else:
                self._discard(worker)

    def _result(self, name: str, reply: tuple[Any, ...]) -> Any:
        kind = reply[0]
        if kind == "ok":
            return reply[1]
        if kind == "raised" and reply[1] == "MemoryError":
            limit = self.settings.memory_bytes / MIB
            raise FunctionCallError(
                f"{name} failed: MemoryError: it needed more than its {limit:g} MiB (server.function_memory_bytes)"
            )
        if kind == "raised":
            _, type_name, message, trace = reply
            logger.warning("Function %s failed:\n%s", name, trace)
            raise FunctionCallError(f"{name} failed: {type_name}: {message}")
        if kind == "unsendable":
            raise FunctionCallError(f"{name} returned a result that cannot be sent back: {reply[1]}")
        raise FunctionCallError(f"{name} did not finish: its worker sent an unknown reply ({str(kind)[:40]})")

    async def _start(self) -> _Worker:
        if self._closed:
            raise FunctionCallError("the server is stopping: no function runs now")
        if os.name != "posix":  # fail closed: without these bounds a function could freeze the server
            raise FunctionCallError(
                f"custom functions run in worker processes bounded by setrlimit and killed by process group, "
                f"which this platform ({sys.platform}) lacks: no function runs here"
            )
        config = {
            "sys_path": sys.path,
            "folders": self.settings.folders,
            "memory_bytes": self.settings.memory_bytes,
            "parent_pid": os.getpid(),
        }
        # The worker needs no key of the server; functions that call services bring their own settings.
        environment = {key: value for key, value in os.environ.items() if key != ENCRYPTION_KEY_ENV}
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-I", "-c", BOOTSTRAP, json.dumps(config)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=environment,
            start_new_session=True,  # its own process group: killing it kills what it started
        )
        worker = _Worker(process)
        self._workers.add(worker)
        try:
            ready = await asyncio.wait_for(worker.reply(), START_SECONDS)
        except asyncio.TimeoutError:
            self._discard(worker)
            raise FunctionCallError(f"a function worker did not start within {START_SECONDS:g}s") from None
        except _WorkerLost as exc:
            self._discard(worker)
            raise FunctionCallError(f"a function worker could not start: {exc} (see the server's log)") from None
        except BaseException:
            self._discard(worker)
            raise
        if ready[0] != "ready":
            self._discard(worker)
            raise FunctionCallError(f"a function worker could not start: it answered {str(ready[0])[:40]}")
        return worker

    def _discard(self, worker: _Worker) -> None:
        """Kill and reap a worker its caller holds (idle, or the one its call ran in)."""
        if worker not in self._workers:
            return
        worker.kill()
        self._workers.discard(worker)
        task = asyncio.get_running_loop().create_task(worker.reap())
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def close(self) -> None:
        """Kill every worker and wait until they are gone; a running call fails and discards its own."""
        self._closed = True
        every = list(self._workers)
        for worker in every:
            worker.kill()
        idle, self._idle = self._idle, []
        for worker in idle:
            self._discard(worker)
        await asyncio.gather(*(worker.gone.wait() for worker in every), *self._reaping)
