"""The code sandbox bounds a whole run, not only each process: its total memory, and no user namespace inside.

Every program runs in the real sandbox (see test_code_runner.py for the skip rule). A program that is not
stopped runs until its generous timeout: a test waits for the sandbox's verdict, never for a time.
"""

from __future__ import annotations

import platform
import textwrap

import pytest

from lollms_server.core.code_runner import TOTAL_MEMORY_SETTING
from lollms_server.core.errors import UnavailableError
from lollms_server.core.sandbox import MIB, SandboxLimits
from lollms_server.core.sandbox_seccomp import seccomp_program
from tests.core.test_code_runner import run, sandbox  # noqa: F401  (sandbox: the fixture)

# Each child holds the memory it has written to (resident), says so, then waits to be killed.
HOLDERS = """
import os, time
for index in range({count}):
    if os.fork() == 0:
        block = bytearray({mib} << 20)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        print("holding", index, flush=True)
        time.sleep(3600)
        os._exit(0)
while True:
    os.wait()
"""


@pytest.mark.usefixtures("sandbox")
async def test_six_processes_of_300_mib_are_stopped_together() -> None:
    # Each process is well inside its 512 MiB of address space; together they hold 1.8 GiB, over the 1 GiB of
    # a run. Before the supervisor they all ran, and this program would only have ended at its timeout.
    result = await run(HOLDERS.format(count=6, mib=300))
    assert result.stopped is not None, result
    assert TOTAL_MEMORY_SETTING in result.stopped and "over the limit of 1024 MiB" in result.stopped
    assert not result.timed_out and result.exit_code is None


@pytest.mark.usefixtures("sandbox")
async def test_the_configured_total_is_the_limit() -> None:
    # One process of 300 MiB: allowed by every per-process limit and by the default total, not by this one.
    result = await run(HOLDERS.format(count=1, mib=300), limits=SandboxLimits(total_memory_bytes=256 * MIB))
    assert result.stopped is not None and "over the limit of 256 MiB" in result.stopped, result


@pytest.mark.usefixtures("sandbox")
async def test_a_run_under_its_total_is_left_alone() -> None:
    # Three processes of 200 MiB each (600 MiB together) end by themselves.
    program = """
    import os
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(200 << 20)
            for offset in range(0, len(block), 4096):
                block[offset] = 1
            os._exit(0)
        children.append(pid)
    print(sorted(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children))
    """
    result = await run(program)
    assert result.stopped is None and result.exit_code == 0 and result.stdout == "[0, 0, 0]\n", result


@pytest.mark.usefixtures("sandbox")
async def test_files_in_its_tmpfs_count() -> None:
    # 60 MiB of files (15 MiB each: under the 16 MiB file size limit) in /tmp and /dev/shm, which no process
    # holds in its memory, against a total of 48 MiB.
    program = """
    import time
    for name in ("/tmp/a", "/tmp/b", "/dev/shm/c", "/dev/shm/d"):
        with open(name, "wb") as file:
            file.write(b"x" * (15 << 20))
    print("written", flush=True)
    time.sleep(3600)
    """
    result = await run(program, limits=SandboxLimits(total_memory_bytes=48 * MIB))
    assert result.stopped is not None and "over the limit of 48 MiB" in result.stopped, result


@pytest.mark.usefixtures("sandbox")
async def test_the_program_cannot_stop_its_supervisor() -> None:
    # pid 1 is the supervisor: signals from inside never reach it, and it is not the program's to trace.
    attempts = """
    import os, signal
    for sig in (signal.SIGKILL, signal.SIGSTOP, signal.SIGTERM, signal.SIGINT):
        try:
            os.kill(1, sig)
        except PermissionError:  # a server running as root: the supervisor is root, the program is not
            pass
    try:
        open("/proc/1/mem", "rb")
        print("opened its memory")
    except PermissionError:
        print("memory refused")
    print("signalled", flush=True)
    """
    result = await run(textwrap.dedent(attempts) + HOLDERS.format(count=6, mib=300))
    assert result.stdout.startswith("memory refused\nsignalled\n"), result
    assert result.stopped is not None and TOTAL_MEMORY_SETTING in result.stopped, result


# User namespaces and memory no process shows

CLONE_NUMBERS = {"x86_64": (56, 435), "aarch64": (220, 435)}  # clone, clone3


@pytest.mark.usefixtures("sandbox")
async def test_cannot_create_a_user_namespace() -> None:
    # Inside one the program would be root again over new namespaces of its own.
    clone, clone3 = CLONE_NUMBERS[platform.machine()]
    program = f"""
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    CLONE_NEWUSER, SIGCHLD = 0x10000000, 17

    def report(name, result):
        print(name, "ok" if result >= 0 else os.strerror(ctypes.get_errno()), flush=True)

    def cloned(name, result):
        if result == 0:  # the child, in a new user namespace: leave at once
            os._exit(0)
        report(name, result)

    report("unshare", libc.unshare(CLONE_NEWUSER))
    cloned("clone", libc.syscall({clone}, ctypes.c_ulong(CLONE_NEWUSER | SIGCHLD), 0, 0, 0, 0))
    arguments = (ctypes.c_uint64 * 11)(CLONE_NEWUSER, 0, 0, 0, SIGCHLD)  # struct clone_args
    cloned("clone3", libc.syscall({clone3}, arguments, ctypes.sizeof(arguments)))
    if hasattr(os, "unshare"):
        try:
            os.unshare(os.CLONE_NEWUSER)
        except OSError as exc:
            print("os.unshare", exc.strerror)
    else:
        print("os.unshare", "Operation not permitted")  # Python before 3.12 has none
    print("fork", "ok" if os.fork() else os._exit(0))  # ordinary processes still start
    """
    result = await run(program)
    assert result.stdout.splitlines() == [
        "unshare Operation not permitted",
        "clone Operation not permitted",
        "clone3 Function not implemented",  # its flags cannot be read by a filter: the C library falls back
        "os.unshare Operation not permitted",
        "fork ok",
    ], result


@pytest.mark.usefixtures("sandbox")
async def test_memory_no_process_would_show_is_refused() -> None:
    program = """
    import ctypes, os
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_PRIVATE, IPC_CREAT = 0, 0o1000
    try:
        os.memfd_create("hidden")
        print("memfd ok")
    except OSError as exc:
        print("memfd", exc.strerror)
    print("shmget", libc.shmget(IPC_PRIVATE, 1 << 20, IPC_CREAT | 0o600), os.strerror(ctypes.get_errno()))
    print("msgget", libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600), os.strerror(ctypes.get_errno()))
    with open("/dev/shm/shared", "wb") as file:  # shared memory in its capped tmpfs still works
        file.write(b"x" * 4096)
    print("tmpfs ok")
    """
    result = await run(program)
    assert result.stdout.splitlines() == [
        "memfd Operation not permitted",
        "shmget -1 Operation not permitted",
        "msgget -1 Operation not permitted",
        "tmpfs ok",
    ], result


def test_no_filter_no_sandbox() -> None:
    # A processor without a filter gets no sandbox rather than one that lets a user namespace through.
    with pytest.raises(UnavailableError, match=r"no seccomp filter for this processor \(ppc64le\)"):
        seccomp_program("ppc64le")
    assert len(seccomp_program("x86_64")) % 8 == 0 and seccomp_program("aarch64") != seccomp_program("x86_64")
