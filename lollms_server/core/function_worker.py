"""A function worker process: it runs custom functions for the server, one call at a time, under a memory bound.

The server (:mod:`lollms_server.core.function_pool`) starts it with ``python -I -c`` and a JSON config
(``{"sys_path", "folders", "memory_bytes", "parent_pid"}``), and kills it when a call outlives its time: a
function that never yields (a pure-Python loop, C code) cannot freeze the server, only this process. Before it
imports any function file it limits its address space (RLIMIT_AS, soft = hard) and asks the kernel to kill it
when the server dies, so a stuck call never outlives the server.

It speaks on the stdin and stdout it was started with; functions get /dev/null as stdin and the server's stderr
as stdout, so a ``print`` cannot corrupt the channel. Each message is a frame: an 8-byte big-endian length, then
a pickle. The server sends ``(name, args, kwargs)``; the worker answers ``("ready", pid)`` once, then for each
call ``("ok", value)``, ``("raised", type name, message, traceback)`` or ``("unsendable", reason)``.
"""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import signal
import sys
import traceback
from pathlib import Path
from typing import Any, BinaryIO

from lollms_server.core.function_discovery import RegisteredFunction, discover_functions

FRAME_HEADER_BYTES = 8
MAX_REPLY_BYTES = 16 << 20  # a function's pickled result; the tool loop shows a model 8,000 characters of it
MAX_MESSAGE_CHARS = 2000  # an exception's message as the caller sees it
MAX_TRACEBACK_CHARS = 8000  # what the server logs of it


def frame(payload: bytes) -> bytes:
    return len(payload).to_bytes(FRAME_HEADER_BYTES, "big") + payload


def frame_size(header: bytes) -> int:
    return int.from_bytes(header, "big")


def _read_frame(channel: BinaryIO) -> bytes | None:
    header = channel.read(FRAME_HEADER_BYTES)
    if len(header) < FRAME_HEADER_BYTES:
        return None  # the server closed the channel: it is stopping
    return channel.read(frame_size(header))


def _send(channel: BinaryIO, reply: tuple[Any, ...]) -> None:
    try:
        payload = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an unpicklable result (a socket, a lambda...), or MemoryError while pickling
        payload = pickle.dumps(("unsendable", f"its result cannot be pickled: {type(exc).__name__}: {exc}"))
    if len(payload) > MAX_REPLY_BYTES:
        reason = f"its result takes {len(payload):,} bytes pickled; at most {MAX_REPLY_BYTES:,} may be sent back"
        payload = pickle.dumps(("unsendable", reason))
    channel.write(frame(payload))
    channel.flush()


def _run(loop: asyncio.AbstractEventLoop, function: RegisteredFunction, args: Any, kwargs: Any) -> tuple[Any, ...]:
    try:
        return ("ok", loop.run_until_complete(function.function(*args, **kwargs)))
    except MemoryError:
        pass  # its traceback holds what filled the memory: let go of it before building the reply
    except Exception as exc:
        trace = "".join(traceback.format_exception(exc))[-MAX_TRACEBACK_CHARS:]
        return ("raised", type(exc).__name__, str(exc)[:MAX_MESSAGE_CHARS], trace)
    gc.collect()
    return ("raised", "MemoryError", "", "")


def _limit_memory(memory_bytes: int) -> None:
    """Cap the address space; exit (status 3) when the worker already uses more than the cap: whether it could go
    on would depend on which allocations happen to fit in memory it already holds."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        in_use = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):  # not Linux: the cap alone
        return
    if in_use > memory_bytes:
        sys.stderr.write(f"function worker: {in_use} bytes in use at start, over server.function_memory_bytes\n")
        os._exit(3)


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL when the server's thread that started us ends (Linux); exit now if the server is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(0)


def _take_channel() -> tuple[BinaryIO, BinaryIO]:
    """The pipes to the server, on new descriptors; fd 0 becomes /dev/null and fd 1 a copy of stderr."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout = sys.stderr  # line-buffered: what a function prints shows before a kill can lose it
    return requests, replies


def serve(config: dict[str, Any]) -> None:
    _die_with_parent(int(config["parent_pid"]))
    requests, replies = _take_channel()
    _limit_memory(int(config["memory_bytes"]))
    functions = discover_functions((Path(folder), source) for folder, source in config["folders"]).functions
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    _send(replies, ("ready", os.getpid()))
    while (request := _read_frame(requests)) is not None:
        name, args, kwargs = pickle.loads(request)
        function = functions.get(name)
        if function is None:
            _send(replies, ("raised", "LookupError", f"no function {name} in the worker (was its file changed?)", ""))
            continue
        _send(replies, _run(loop, function, args, kwargs))


def main(config: dict[str, Any]) -> None:
    """Entry point of ``python -I -c`` (see function_pool.BOOTSTRAP): sys.path is already the server's."""
    serve(config)
