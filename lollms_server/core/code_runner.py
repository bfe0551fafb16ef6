"""Running untrusted Python (code written by a model) in the sandbox: timeout, output cap, nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import math
from dataclasses import dataclass, replace

from lollms_server.core.errors import UnavailableError
from lollms_server.core.sandbox import MIB, MemoryStop, SandboxedProcess, SandboxLimits

# The setting a memory stop names, so that the reader knows what to raise.
TOTAL_MEMORY_SETTING = "code_sandbox.max_total_memory_bytes"


@dataclass(frozen=True)
class CodeRunResult:
    exit_code: int | None  # None when the run did not end by itself (timed out, or stopped)
    stdout: str
    stderr: str
    timed_out: bool
    stopped: str | None = None  # why the sandbox stopped the run before its end, naming the limit


def _memory_stopped(stop: MemoryStop) -> str:
    return (
        f"stopped: the run held {stop.used / MIB:.0f} MiB (its processes and files together), over the limit "
        f"of {stop.limit / MIB:.0f} MiB for a whole run ({TOTAL_MEMORY_SETTING})"
    )


async def _read_capped(stream: asyncio.StreamReader | None, limit: int) -> str:
    """Everything the stream carries, keeping only the first ``limit`` bytes (the rest is drained)."""
    kept = bytearray()
    dropped = 0
    while stream is not None:
        block = await stream.read(65536)
        if not block:
            break
        room = max(limit - len(kept), 0)
        kept += block[:room]
        dropped += len(block) - min(room, len(block))
    text = kept.decode("utf-8", errors="replace")
    return text + (f"\n[... {dropped} more bytes]" if dropped else "")


async def run_python(
    code: str, timeout: float = 10.0, max_output: int = 20_000, limits: SandboxLimits | None = None
) -> CodeRunResult:
    """Run ``code`` with ``python -I`` in the sandbox (see :mod:`lollms_server.core.sandbox`), killed after
    ``timeout`` seconds with every process it started. Raises UnavailableError when no sandbox can be made:
    the code is never run outside one. ``limits`` defaults to :class:`SandboxLimits` with the CPU time
    limit set to the timeout."""
    limits = limits or replace(SandboxLimits(), cpu_seconds=max(1, math.ceil(timeout)))
    sandbox = await SandboxedProcess.start(code, limits)
    process = sandbox.process
    readers = asyncio.gather(_read_capped(process.stdout, max_output), _read_capped(process.stderr, max_output))
    try:
        try:
            await asyncio.wait_for(process.wait(), timeout)
            timed_out = False
        except asyncio.TimeoutError:
            timed_out = True
        # After a timeout or a normal exit alike, nothing the program started may outlive it.
        await sandbox.destroy()
        stdout, stderr = await readers
        set_up = sandbox.was_set_up
        memory_stop = sandbox.memory_stop
    except BaseException:  # cancelled: stop everything, then let the cancellation through
        sandbox.kill_now()
        readers.cancel()
        readers.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved: no warning
        with contextlib.suppress(BaseException):  # reaping closes its pipes; a second cancellation skips it
            await sandbox.destroy(grace=5.0)
        raise
    finally:
        sandbox.close()
    if not timed_out and not set_up:
        reason = stderr.strip() or "no reason given"
        raise UnavailableError(
            f"the code sandbox could not start: {reason} (it needs bubblewrap 0.8 or later, and a kernel that"
            " allows namespaces)"
        )
    ended = not timed_out and memory_stop is None
    return CodeRunResult(
        exit_code=process.returncode if ended else None,
        stdout=stdout,
        stderr=stderr,
        timed_out=timed_out,
        stopped=_memory_stopped(memory_stop) if memory_stop else None,
    )


async def sandbox_problem() -> str | None:
    """Why generated code cannot run here (no bubblewrap, namespaces refused...), or None when it can."""
    try:
        result = await run_python("print('ok')", timeout=30.0)
    except UnavailableError as exc:
        return str(exc)
    if result.stdout.strip() != "ok":
        return f"the code sandbox does not run Python: {result.stderr.strip()[-500:] or result.exit_code}"
    return None


def sandbox_unavailable_reason() -> str | None:
    """Blocking :func:`sandbox_problem`, for code without an event loop (e.g. personality loading in a thread)."""
    return asyncio.run(sandbox_problem())
