"""Grammars from client JSON schemas, built and proven in a process of their own (``grammar_worker.py``).

llama.cpp parses a grammar and walks it for every candidate token in C: a grammar it cannot handle can crash
the process, and building one from a large schema can take minutes. The schemas are bounded before they get
here (``core/client_schemas.py``); this is the second wall. One worker process, started on first use and kept
warm, builds each grammar under a deadline and a memory limit. A worker that crashes, runs past its deadline or
whose client leaves is killed (the only way to stop work in C) and replaced on the next request. Grammars are
remembered by schema and model (agents send the same tools every turn), and so are the schemas that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import anyio

from lollms_server.core.errors import BadRequestError, UnavailableError

WORKER = Path(__file__).with_name("grammar_worker.py")
REMEMBERED = 256  # grammars (and refusals) kept, least recently used first out
STARTUP_SECONDS = 120.0  # for the worker to start (Python and llama-cpp-python's import) on a loaded machine
_LINE_LIMIT = 64 * 1024 * 1024  # an answer line: the largest grammar a bounded schema gives is far smaller


class GrammarBuilder:
    """Builds GBNF grammars in the worker process, one at a time, ``timeout`` seconds and ``memory_mb`` each."""

    def __init__(self, timeout: float, memory_mb: int) -> None:
        self.timeout = timeout
        self.memory_mb = memory_mb
        self._process: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: asyncio.Lock | None = None
        self._known: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()  # key -> (grammar, refusal)
        self.started = 0  # worker processes started (each crash, deadline or abandoned build costs one)

    async def build(self, model_path: Path, schema: Any, root: str | None, what: str) -> str:
        """The grammar of ``schema`` (under ``root``, which refers to the schema as ``schema-root``) for the model
        at ``model_path``; BadRequestError naming ``what`` when it cannot be built."""
        key = hashlib.sha256(json.dumps([str(model_path), schema, root], sort_keys=True).encode()).hexdigest()
        if key in self._known:
            self._known.move_to_end(key)
        else:
            async with self._guard():
                if key not in self._known:
                    result = await self._build(model_path, schema, root, what)
                    if result[0] is None and result[1] is None:  # the worker could not start: nothing to remember
                        raise UnavailableError(f"{what}: the grammar worker could not start; retry shortly")
                    self._remember(key, result)
        grammar, refusal = self._known[key]
        if refusal is not None:
            raise BadRequestError(refusal)
        assert grammar is not None
        return grammar

    def _remember(self, key: str, result: tuple[str | None, str | None]) -> None:
        self._known[key] = result
        while len(self._known) > REMEMBERED:
            self._known.popitem(last=False)

    def _guard(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (tests): nothing of the old one is usable
            if self._process is not None and self._process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self._process.pid, signal.SIGKILL)
            self._process = None
            self._loop, self._lock = loop, asyncio.Lock()
        assert self._lock is not None
        return self._lock

    async def _build(self, model_path: Path, schema: Any, root: str | None, what: str) -> tuple[str | None, str | None]:
        """(grammar, None), (None, refusal), or (None, None) when the worker could not start. The deadline counts
        the build alone: starting the worker (seconds on a busy machine) is bounded apart, and a refusal is the
        schema's own, worth remembering."""
        request = json.dumps({"model": str(model_path), "schema": schema, "root": root}) + "\n"
        finished = False
        try:
            with anyio.fail_after(STARTUP_SECONDS):
                process = await self._worker()
        except (TimeoutError, ConnectionError, OSError):
            await self.aclose()
            return None, None
        try:
            with anyio.fail_after(self.timeout):
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(request.encode())
                await process.stdin.drain()
                line = await process.stdout.readline()
            finished = bool(line)
        except TimeoutError:
            return None, f"{what}: its grammar could not be built within {self.timeout:g} s; simplify the schema"
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the worker died: reported below
        finally:
            if not finished:  # past its deadline, dead, or its client left mid-build: only killing stops it
                await self.aclose()
        if not finished:
            return None, f"{what}: building its grammar failed (the builder process died); simplify the schema"
        answer = json.loads(line)
        if "error" in answer:
            return None, f"{what}: no grammar can be built from it ({answer['error']})"
        return str(answer["grammar"]), None

    async def _worker(self) -> asyncio.subprocess.Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(WORKER),
            str(self.memory_mb),  # the worker bounds its own heap (no preexec_fn: the server has threads)
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # llama.cpp's own logging
            limit=_LINE_LIMIT,
        )
        self.started += 1
        assert self._process.stdout is not None
        ready = await self._process.stdout.readline()
        if not ready:
            raise ConnectionError("the grammar worker did not start")
        return self._process

    async def aclose(self) -> None:
        """Kill the worker (if one runs) and reap it; the next build starts a new one."""
        process, self._process = self._process, None
        if process is None:
            return
        with anyio.CancelScope(shield=True):  # also when the build was cancelled: the worker must not outlive it
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            assert process.stdin is not None
            process.stdin.close()
            await process.wait()
