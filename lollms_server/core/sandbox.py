"""The sandbox generated code runs in: bubblewrap (Linux namespaces), a read-only view of the system, no network.

One run is one ``bwrap`` process. It unshares the user (when the server is not root), pid, network, ipc, uts,
cgroup and mount namespaces. The program sees read-only binds of /usr, the /lib* links and the Python
installation (base prefix and virtual environment), a fresh /proc of its own pid namespace, a minimal /dev,
and two size-capped tmpfs (/tmp, its working and home folder, and /dev/shm) as the only writable places.
Its environment is built from nothing, and bwrap itself is started with an empty one, so no key of the
server reaches it. Every process of it runs under the seccomp filter of :mod:`sandbox_seccomp` (no user
namespace inside). ``sandbox_launcher.py`` is its first process: it starts the program with the resource
limits, as a user id of its own when the server is root (so that RLIMIT_NPROC applies and no capability
remains), and stays to supervise the memory of the whole run.

The pid namespace is the kill switch: when its init (the launcher) dies the kernel kills every process in it,
so :meth:`SandboxedProcess.destroy` kills that init through a pidfd and waits until it is gone, and the
launcher stops a run that holds too much memory by exiting.

Why the total memory is a supervisor's sum and not a cgroup: a memory cgroup is the kernel's exact bound, but
creating one needs root on a cgroup v2 host or a delegated subtree (systemd's Delegate=), which a server
started by hand, in a container or on a cgroup v1 host (as the machine this was written on) does not have;
resource limits only bound each process (RLIMIT_AS times RLIMIT_NPROC is 8 GiB at the defaults). The
supervisor needs neither and works wherever the sandbox does. What it counts: the resident and swapped
private and shared memory of every process and the files of both tmpfs; what it cannot count (memory files,
System V shared memory and queues) the seccomp filter refuses. A run may pass the limit by what its processes
touch in one poll (10 ms) before everything is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lollms_server.core.errors import UnavailableError
from lollms_server.core.sandbox_seccomp import seccomp_program

MIB = 1 << 20
SANDBOX_UID = 65534  # the program's user inside its user namespace, when the server is not root
# When the server is root, each run gets a user id of its own from a range no system allocates (systemd's
# UIDS-GIDS.md leaves 0x70000000-0x7ffdffff unused), so RLIMIT_NPROC counts that run's processes only.
ROOT_MODE_UIDS = range(0x70000000, 0x70000000 + (1 << 24))
INSTALL_HINT = (
    "install bubblewrap (Debian and Ubuntu: `apt-get install bubblewrap`, Fedora: `dnf install bubblewrap`) "
    "on a Linux host that allows namespaces"
)
_LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
_INSIDE_LAUNCHER = "/sandbox/launcher.py"
INSIDE_SCRIPT = "/sandbox/main.py"
INSIDE_HOME = "/tmp"
INSIDE_SHM = "/dev/shm"
SCRATCH_FOLDERS = (INSIDE_HOME, INSIDE_SHM)  # the tmpfs, each scratch_bytes large
_SYSTEM_FILES = ("/etc/ld.so.cache", "/etc/localtime")
_ENVIRONMENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": INSIDE_HOME,
    "TMPDIR": INSIDE_HOME,
    "LANG": "C.UTF-8",
    # Numerical libraries start one thread per core at import; each counts against the process limit.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run (``resource.setrlimit``, soft = hard) and the size of its writable space."""

    memory_bytes: int = 512 * MIB  # address space of each process (RLIMIT_AS)
    # Memory the whole run may hold, all its processes and its tmpfs together (the launcher's supervisor).
    total_memory_bytes: int = 1024 * MIB
    cpu_seconds: int = 10  # CPU time of each process (RLIMIT_CPU)
    processes: int = 16  # processes and threads of the sandbox user (RLIMIT_NPROC)
    file_bytes: int = 16 * MIB  # largest file it may write (RLIMIT_FSIZE)
    open_files: int = 64  # RLIMIT_NOFILE
    scratch_bytes: int = 64 * MIB  # size of each tmpfs (/tmp and /dev/shm)

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> SandboxLimits:
        """The limits of the ``code_sandbox`` config section (the others keep their defaults)."""
        return cls(total_memory_bytes=int(section["max_total_memory_bytes"]))

    def rlimits(self) -> dict[str, int]:
        return {
            "RLIMIT_AS": self.memory_bytes,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }


def find_bubblewrap() -> str:
    """The ``bwrap`` executable; UnavailableError says why there is none and how to get one."""
    if sys.platform != "linux":
        raise UnavailableError(
            f"running generated code needs the Linux sandbox bubblewrap; this host is {sys.platform}"
        )
    if not hasattr(os, "pidfd_open"):
        raise UnavailableError("running generated code needs Linux 5.3 or later (pidfd)")
    path = shutil.which("bwrap")
    if path is None:
        raise UnavailableError(f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}")
    return path


def _python_folders() -> list[str]:
    """The folders the interpreter needs: its installation and its virtual environment, /usr aside."""
    folders = {os.path.abspath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    if "/" in folders:
        raise UnavailableError(f"the Python installation ({sys.executable}) has its prefix at /, which cannot be bound")
    kept = sorted(p for p in folders if p != "/usr" and not p.startswith("/usr/"))
    executable = os.path.abspath(sys.executable)
    if not any(executable.startswith(p + "/") for p in [*kept, "/usr"]):
        raise UnavailableError(f"the Python executable {executable} lies outside its installation folders")
    return kept


def _parent_folders(paths: list[str]) -> list[str]:
    """``--dir`` for every folder above ``paths``: bwrap would create them readable by root only."""
    parents = sorted({str(parent) for path in paths for parent in Path(path).parents if str(parent) != "/"})
    return [part for parent in parents for part in ("--perms", "0755", "--dir", parent)]


def _mounts(code_fd: int, scratch_bytes: int) -> list[str]:
    binds = ["/usr", *_python_folders()]
    arguments = []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            arguments += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            binds.append(name)
    arguments += [part for folder in binds for part in ("--ro-bind", folder, folder)]
    arguments += [part for name in _SYSTEM_FILES for part in ("--ro-bind-try", name, name)]
    return [
        # The scratch folder first: what is bound afterwards shows through it, so a server installed under
        # /tmp (a checkout there, its virtual environment) stays visible, read-only, to the program.
        *("--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", INSIDE_HOME),
        *_parent_folders([*binds, *_SYSTEM_FILES, INSIDE_SCRIPT]),
        *arguments,
        *("--proc", "/proc", "--dev", "/dev"),
        *("--perms", "1777", "--size", str(scratch_bytes), "--tmpfs", INSIDE_SHM),
        *("--ro-bind", str(_LAUNCHER), _INSIDE_LAUNCHER),
        *("--perms", "0444", "--ro-bind-data", str(code_fd), INSIDE_SCRIPT),
        *("--remount-ro", "/"),
    ]


def bubblewrap_command(
    bwrap: str, *, code_fd: int, seccomp_fd: int, report_fd: int, status_fd: int, limits: SandboxLimits
) -> list[str]:
    """The full ``bwrap`` command line running the script read from ``code_fd`` under ``limits``, with the seccomp
    filter read from ``seccomp_fd``."""
    privileged = os.geteuid() == 0
    if privileged:
        # Root creates the namespaces without a user namespace; the launcher then becomes an unused user id,
        # which leaves no capability and makes RLIMIT_NPROC count (root is exempt from it, even in a user
        # namespace). (--unshare-all would add a user namespace mapping only root, where no other user exists.)
        uid: int | None = ROOT_MODE_UIDS[secrets.randbelow(len(ROOT_MODE_UIDS))]
        namespaces = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        identity = ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        namespaces = ["--unshare-all", "--unshare-user"]
        identity = ["--disable-userns", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
        uid = None
    launcher_config = {
        "limits": limits.rlimits(),
        "uid": uid,
        "gid": uid,
        "report_fd": report_fd,
        "total_memory_bytes": limits.total_memory_bytes,
        "scratch": list(SCRATCH_FOLDERS),
        "argv": [sys.executable, "-I", "-B", INSIDE_SCRIPT],
    }
    environment = [part for key, value in _ENVIRONMENT.items() for part in ("--setenv", key, value)]
    return [
        bwrap,
        *namespaces,
        *identity,
        # The launcher is the init of the pid namespace: its exit, on purpose or not, ends every process.
        *("--as-pid-1", "--die-with-parent", "--new-session", "--hostname", "sandbox"),
        *("--seccomp", str(seccomp_fd)),
        *_mounts(code_fd, limits.scratch_bytes),
        *("--chdir", INSIDE_HOME, "--clearenv", *environment),
        *("--json-status-fd", str(status_fd)),
        "--",
        *(sys.executable, "-I", "-B", _INSIDE_LAUNCHER, json.dumps(launcher_config)),
    ]


def _read_available(fd: int) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while block := os.read(fd, 65536):
            data += block
    return data


@dataclass(frozen=True)
class MemoryStop:
    """The launcher stopped the run: its processes and tmpfs held ``used`` bytes, over ``limit``."""

    used: int
    limit: int


@dataclass
class SandboxedProcess:
    """One running sandbox: the ``bwrap`` process, and the pipes it and the launcher report through."""

    process: asyncio.subprocess.Process
    report_fd: int
    status_fd: int
    _status: bytes = field(default=b"", init=False)
    _report: bytes = field(default=b"", init=False)

    @classmethod
    async def start(cls, code: str, limits: SandboxLimits) -> SandboxedProcess:
        """Start ``code`` in a new sandbox; stdout and stderr are pipes, stdin is empty."""
        bwrap = find_bubblewrap()
        seccomp = seccomp_program()
        code_fd = os.memfd_create("lollms_code")
        seccomp_fd = os.memfd_create("lollms_seccomp")
        report_read, report_write = os.pipe()
        status_read, status_write = os.pipe()
        try:
            for fd, content in ((code_fd, code.encode("utf-8")), (seccomp_fd, seccomp)):
                os.write(fd, content)
                os.lseek(fd, 0, os.SEEK_SET)
            command = bubblewrap_command(
                bwrap,
                code_fd=code_fd,
                seccomp_fd=seccomp_fd,
                report_fd=report_write,
                status_fd=status_write,
                limits=limits,
            )
            process = await asyncio.create_subprocess_exec(
                *command,
                env={},  # bwrap's own environment is readable in the sandbox (/proc/1/environ): keep it empty
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(code_fd, seccomp_fd, report_write, status_write),
                start_new_session=True,
            )
        except BaseException:
            os.close(report_read)
            os.close(status_read)
            raise
        finally:
            for fd in (code_fd, seccomp_fd, report_write, status_write):
                os.close(fd)
        os.set_blocking(report_read, False)
        os.set_blocking(status_read, False)
        return cls(process, report_read, status_read)

    def _reports(self) -> list[list[str]]:
        """The launcher's report lines so far, each split in words."""
        self._report += _read_available(self.report_fd)
        return [line.split() for line in self._report.decode(errors="replace").splitlines()]

    @property
    def was_set_up(self) -> bool:
        """Whether the launcher ran inside a complete sandbox (so a failure since then is the program's)."""
        return ["ready"] in self._reports()

    @property
    def memory_stop(self) -> MemoryStop | None:
        """Why the launcher stopped the run for its memory, if it did."""
        for report in self._reports():
            if len(report) == 3 and report[0] == "memory" and report[1].isdigit() and report[2].isdigit():
                return MemoryStop(used=int(report[1]), limit=int(report[2]))
        return None

    def _init_pidfd(self) -> int | None:
        """A pidfd on the sandbox's init (the process whose death empties the pid namespace), if it still runs."""
        self._status += _read_available(self.status_fd)
        try:
            first = json.JSONDecoder().raw_decode(self._status.decode())[0]
            pid, namespace = int(first["child-pid"]), int(first["pid-namespace"])
        except (ValueError, KeyError, TypeError):
            return None  # bwrap never created the namespaces
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        try:
            # The pid was read from bwrap; check it still names the init of our namespace before signalling it.
            if os.stat(f"/proc/{pid}/ns/pid").st_ino == namespace:
                return pidfd
        except OSError:
            pass  # exited meanwhile: its namespace is already gone
        os.close(pidfd)
        return None

    def kill_now(self) -> None:
        """Kill everything without waiting (for cancellation); :meth:`destroy` also waits."""
        pidfd = self._init_pidfd()
        if pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)

    async def destroy(self, grace: float = 10.0) -> None:
        """Kill every process of the sandbox and return once none is left."""
        pidfd = self._init_pidfd()
        if pidfd is not None:
            try:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                # A pidfd becomes readable when its process has exited, which for the init of a pid namespace
                # happens after the kernel has killed and reaped every other process in it.
                loop = asyncio.get_running_loop()
                gone: asyncio.Future[None] = loop.create_future()

                def exited() -> None:
                    if not gone.done():
                        gone.set_result(None)

                loop.add_reader(pidfd, exited)
                try:
                    await asyncio.wait_for(gone, grace)
                finally:
                    loop.remove_reader(pidfd)
            finally:
                os.close(pidfd)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        await self.process.wait()

    def close(self) -> None:
        os.close(self.report_fd)
        os.close(self.status_fd)
