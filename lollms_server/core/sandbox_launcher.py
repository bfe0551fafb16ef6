"""Runs inside the sandbox as its first process (pid 1): starts the program, then supervises its memory.

Executed as a script (``python -I -B sandbox_launcher.py CONFIG``) by the sandbox's Python, so it uses the
standard library only and imports nothing from lollms_server. CONFIG is a JSON object:
``{"limits": {"RLIMIT_AS": bytes, ...}, "uid": int | null, "gid": int | null, "report_fd": int,
"total_memory_bytes": int, "scratch": [folder, ...], "argv": [...]}``.

The program is a child with the resource limits (soft = hard, so it cannot raise them), an unprivileged user
and nothing but stdin, stdout and stderr. This process stays as the supervisor: it reaps the processes of the
sandbox and adds up the memory they hold every ``POLL_SECONDS``. When the total goes over
``total_memory_bytes`` it reports ``memory <used> <limit>`` on the report pipe and exits; being the init of the
sandbox's pid namespace, its exit makes the kernel kill every process in it. It exits with the program's exit
status when the program ends (signals as 128 + their number, as a shell does).

The program cannot stop it: signals from inside its pid namespace never reach an init that has no handler
for them, and the supervisor is not dumpable, so neither ptrace nor /proc/1/mem can reach it.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import Any

POLL_SECONDS = 0.01
MEMORY_STOPPED_STATUS = 128 + signal.SIGKILL  # what a shell reports for a killed program
_PR_SET_DUMPABLE = 4
# Per process: private memory, shared memory it maps (tmpfs, shared anonymous) and what of them is swapped out.
_COUNTED = (b"RssAnon:", b"RssShmem:", b"VmSwap:")


def apply(config: dict[str, Any]) -> None:
    """Set the limits (soft = hard, so the program cannot raise them) and leave root if we are root."""
    for name, value in config["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if config["uid"] is not None:
        # The sandbox was set up as root (no user namespace): become an ordinary user, which drops every
        # capability and makes RLIMIT_NPROC count (the kernel never applies it to root).
        os.setgroups([])
        os.setresgid(config["gid"], config["gid"], config["gid"])
        os.setresuid(config["uid"], config["uid"], config["uid"])


def start_program(config: dict[str, Any], open_max: int) -> None:
    """In the child: limits, user, only stdin, stdout and stderr, then exec the program (never returns)."""
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        apply(config)
        os.write(config["report_fd"], b"ready\n")
        os.closerange(3, max(open_max, 1024))
        program = config["argv"]
        os.execv(program[0], program)
    except BaseException as exc:  # no "ready": the server reports the sandbox as unable to start, with this
        os.write(2, f"sandbox launcher: {type(exc).__name__}: {exc}\n".encode())
    os._exit(127)


def memory_in_use(scratch: list[str]) -> int:
    """Bytes held by the sandbox: what every process of it holds, and the files of its tmpfs folders."""
    total = 0
    for name in os.listdir("/proc"):  # this pid namespace's /proc: the sandbox's processes only
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as status:
                lines = status.read().splitlines()
        except OSError:  # ended meanwhile
            continue
        total += sum(int(line.split()[1]) * 1024 for line in lines if line.startswith(_COUNTED))
    for folder in scratch:
        usage = os.statvfs(folder)
        total += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
    return total


def reap(program: int) -> int | None:
    """Collect every ended process; the program's exit status once it has ended, else None."""
    while True:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return None
        if pid == program:
            code = os.waitstatus_to_exitcode(status)
            return code if code >= 0 else 128 - code


def supervise(program: int, config: dict[str, Any]) -> int:
    """Wait for the program, stopping everything when the sandbox holds more memory than allowed."""
    limit = config["total_memory_bytes"]
    while True:
        status = reap(program)
        if status is not None:
            return status
        used = memory_in_use(config["scratch"])
        if used > limit:
            os.write(config["report_fd"], f"memory {used} {limit}\n".encode())
            return MEMORY_STOPPED_STATUS
        signal.sigtimedwait({signal.SIGCHLD}, POLL_SECONDS)


def main(argv: list[str]) -> None:
    config = json.loads(argv[1])
    open_max = os.sysconf("SC_OPEN_MAX")
    # Before the fork, so that the program is never started beside a supervisor it could reach.
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "cannot make the sandbox supervisor non-dumpable")
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # no handler: the program's SIGINT never reaches pid 1
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # taken by sigtimedwait
    program = os.fork()
    if program == 0:
        start_program(config, open_max)
    os._exit(supervise(program, config))


if __name__ == "__main__":
    main(sys.argv)
