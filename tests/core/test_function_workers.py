"""Custom functions run in worker processes (lollms_server.core.function_pool): stopped at their time and memory
bounds with what they started, replaced, and never able to break the channel back to the server."""

from __future__ import annotations

import asyncio
import os
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lollms_server.core.config_schema import MAIN_SCHEMA
from lollms_server.core.errors import ConfigError
from lollms_server.core.function_worker import MAX_REPLY_BYTES
from lollms_server.core.functions import FunctionManager
from lollms_server.core.secrets import ENCRYPTION_KEY_ENV
from tests.helpers import make_config, process_alive, started, wait_until

MIB = 1 << 20
WORKER_FUNCTIONS = '''
import os
import signal
import subprocess
import threading
import time
from pathlib import Path


def _announce(marker: str, text: str) -> None:
    """Write ``marker`` whole at once (renamed into place): whoever sees it exist reads all of it."""
    Path(marker + ".part").write_text(text)
    os.replace(marker + ".part", marker)


async def spin(marker: str) -> None:
    """Starts a process of its own, then loops without ever yielding."""
    child = subprocess.Popen(["sleep", "1000"])
    _announce(marker, f"{os.getpid()} {child.pid}")
    while True:
        pass


async def spin_until(marker: str, release: str) -> str:
    """Loops without ever yielding until the file ``release`` exists."""
    _announce(marker, str(os.getpid()))
    while not os.path.exists(release):
        pass
    return "released"


async def hog(megabytes: int) -> int:
    """Fills ``megabytes`` of memory, 32 MiB at a time."""
    chunks = [b"x" * (32 << 20) for _ in range(megabytes // 32)]
    return len(chunks)


async def pid() -> int:
    return os.getpid()


async def chatty(value: int) -> int:
    """Writes to its stdout every way it can: the channel to the server must not see it."""
    print("printed", value)
    os.write(1, b"written to fd 1\\n")
    return value * 2


async def echo(value):
    return value


async def unpicklable():
    return threading.Lock()


async def oversized() -> bytes:
    return b"x" * (_size_limit() + 1)


def _size_limit() -> int:
    from lollms_server.core.function_worker import MAX_REPLY_BYTES
    return MAX_REPLY_BYTES


async def exits() -> None:
    os._exit(3)


async def crashes() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


async def secret_of_server() -> str | None:
    return os.environ.get(os.environ["NAME_OF_THE_KEY"])
'''


def pids_of(marker: Path) -> list[int]:
    return [int(part) for part in marker.read_text().split()]


Managers = Callable[..., FunctionManager]


@pytest.fixture
async def managers(tmp_path: Path) -> AsyncIterator[Managers]:
    """``managers(**settings)``: a FunctionManager over the test functions; all are closed at the end."""
    folder = tmp_path / "functions"
    folder.mkdir()
    (folder / "worker_tools.py").write_text(textwrap.dedent(WORKER_FUNCTIONS))
    made: list[FunctionManager] = []

    def build(**settings: Any) -> FunctionManager:
        manager = FunctionManager([(folder, "personal")], **settings)
        manager.discover()
        made.append(manager)
        return manager

    yield build
    for manager in made:
        await manager.close()


async def test_a_function_that_never_yields_is_killed_at_its_timeout_with_what_it_started(
    managers: Managers, tmp_path: Path
) -> None:
    manager = managers(timeout=1.0)
    marker = tmp_path / "spinning"
    call = asyncio.create_task(manager.execute_function("worker_tools.spin", {"marker": str(marker)}))
    await started(marker, call)  # the event loop runs while the function spins
    worker, child = pids_of(marker)
    assert process_alive(worker) and process_alive(child) and worker != os.getpid()
    ok, message = await call
    assert not ok
    assert message == "worker_tools.spin did not finish within 1s (server.function_timeout): it was stopped"
    await wait_until(lambda: not process_alive(worker) and not process_alive(child))
    ok, fresh = await manager.execute_function("worker_tools.pid")
    assert ok and fresh != worker  # a new worker serves the next call


async def test_a_function_past_its_memory_bound_gets_a_memory_error(managers: Managers) -> None:
    manager = managers(memory_bytes=256 * MIB)
    ok, worker = await manager.execute_function("worker_tools.pid")
    assert ok
    ok, message = await manager.execute_function("worker_tools.hog", {"megabytes": 1024})
    assert not ok
    assert message == (
        "worker_tools.hog failed: MemoryError: it needed more than its 256 MiB (server.function_memory_bytes)"
    )
    assert await manager.execute_function("worker_tools.hog", {"megabytes": 64}) == (True, 2)
    ok, fresh = await manager.execute_function("worker_tools.pid")
    assert ok and fresh != worker  # a worker that ran out of memory is replaced
    await wait_until(lambda: not process_alive(worker))


async def test_a_warm_worker_serves_call_after_call(managers: Managers) -> None:
    manager = managers()
    pids = {(await manager.execute_function("worker_tools.pid"))[1] for _ in range(5)}
    assert len(pids) == 1 and manager.workers.worker_pids() == sorted(pids)


async def test_what_a_function_prints_never_reaches_the_channel(managers: Managers) -> None:
    manager = managers()
    assert await manager.execute_function("worker_tools.chatty", {"value": 21}) == (True, 42)
    assert await manager.execute_function("worker_tools.chatty", {"value": 1}) == (True, 2)


async def test_arguments_and_results_cross_pickled_and_bounded(managers: Managers) -> None:
    manager = managers()
    value = {"text": "é", "numbers": (1, 2.5, None), "bytes": b"\x00\xff", "big": 10**100}
    assert await manager.execute_function("worker_tools.echo", {"value": value}) == (True, value)
    ok, message = await manager.execute_function("worker_tools.echo", {"value": lambda: 1})
    assert not ok and message.startswith("the arguments of worker_tools.echo cannot be sent to its worker process")
    ok, message = await manager.execute_function("worker_tools.unpicklable")
    assert not ok and message.startswith("worker_tools.unpicklable returned a result that cannot be sent back")
    assert "cannot pickle" in message
    ok, message = await manager.execute_function("worker_tools.oversized")
    assert not ok and f"at most {MAX_REPLY_BYTES:,} may be sent back" in message
    assert await manager.execute_function("worker_tools.chatty", {"value": 2}) == (True, 4)


async def test_a_worker_that_dies_is_reported_and_replaced(managers: Managers) -> None:
    manager = managers()
    ok, message = await manager.execute_function("worker_tools.exits")
    assert (ok, message) == (False, "worker_tools.exits did not finish: its process exited with status 3")
    ok, message = await manager.execute_function("worker_tools.crashes")
    assert (ok, message) == (False, "worker_tools.crashes did not finish: its process was killed by SIGSEGV")
    assert await manager.execute_function("worker_tools.chatty", {"value": 3}) == (True, 6)


async def test_a_cancelled_call_kills_its_worker(managers: Managers, tmp_path: Path) -> None:
    """A client that goes away stops the function it started."""
    manager = managers()
    marker = tmp_path / "spinning"
    call = asyncio.create_task(manager.execute_function("worker_tools.spin", {"marker": str(marker)}))
    await started(marker, call)
    worker, child = pids_of(marker)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await wait_until(lambda: not process_alive(worker) and not process_alive(child))
    assert manager.workers.worker_pids() == []


async def test_closing_stops_running_and_idle_workers(managers: Managers, tmp_path: Path) -> None:
    manager = managers()
    ok, idle = await manager.execute_function("worker_tools.pid")
    marker = tmp_path / "spinning"
    call = asyncio.create_task(
        manager.execute_function("worker_tools.spin_until", {"marker": str(marker), "release": str(tmp_path / "x")})
    )
    await started(marker, call)
    [running] = pids_of(marker)
    await manager.close()
    assert not process_alive(idle) and not process_alive(running) and manager.workers.worker_pids() == []
    assert await call == (False, "worker_tools.spin_until did not finish: its process was killed by SIGKILL")
    ok, message = await manager.execute_function("worker_tools.pid")
    assert (ok, message) == (False, "the server is stopping: no function runs now")


async def test_workers_do_not_get_the_servers_encryption_key(
    managers: Managers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENCRYPTION_KEY_ENV, "a-secret-of-the-server")
    monkeypatch.setenv("NAME_OF_THE_KEY", ENCRYPTION_KEY_ENV)
    assert await managers().execute_function("worker_tools.secret_of_server") == (True, None)


async def test_a_worker_that_cannot_start_is_a_clear_error(managers: Managers) -> None:
    manager = managers(memory_bytes=4 * MIB)  # below what a Python interpreter needs to start
    ok, message = await manager.execute_function("worker_tools.pid")
    assert not ok and message.startswith("a function worker could not start: its process exited with status")


def test_the_bounds_are_settings_with_defaults_and_limits(tmp_path: Path) -> None:
    server = make_config(tmp_path).section("server")
    assert (server["function_timeout"], server["function_memory_bytes"], server["function_workers"]) == (
        30.0,
        1024 * MIB,
        2,
    )
    assert "function_memory_bytes" in MAIN_SCHEMA["server"]["schema"]
    with pytest.raises(ConfigError, match="function_memory_bytes"):
        make_config(tmp_path / "low", server={"function_memory_bytes": 1024})
    with pytest.raises(ConfigError, match="function_workers"):
        make_config(tmp_path / "none", server={"function_workers": 0})
