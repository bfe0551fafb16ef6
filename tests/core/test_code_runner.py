"""The code sandbox: real programs try each known escape and fail; ordinary programs still run.

Every program here runs in the real sandbox (bubblewrap). Without one these tests skip, except under CI=true
where a missing sandbox fails them: run_tests.sh installs bubblewrap when it can.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lollms_server.core.code_runner import CodeRunResult, run_python, sandbox_problem, sandbox_unavailable_reason
from lollms_server.core.errors import UnavailableError
from lollms_server.core.plugin_import import import_file
from lollms_server.core.sandbox import ROOT_MODE_UIDS, SANDBOX_UID, SandboxLimits
from tests.helpers import make_config


@pytest.fixture(scope="module")
def sandbox() -> None:
    """Skip (fail under CI=true) when this machine cannot make a sandbox."""
    reason = sandbox_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must be able to sandbox generated code: {reason}")
    pytest.skip(f"no code sandbox on this machine: {reason}")


# The timeout of programs that should end by themselves: starting a sandbox and Python in it can take seconds
# on a loaded machine (run_python's default is 10 s).
GENEROUS = 120.0
# The timeout of programs that run until stopped: long enough that they have started and printed first.
STOPPED_AFTER = 30.0


async def run(code: str, **options: Any) -> CodeRunResult:
    options.setdefault("timeout", GENEROUS)
    return await run_python(textwrap.dedent(code), **options)


def unique(name: str) -> str:
    """A marker for a command line, unique to this test run (test runs may share the machine)."""
    return f"lollms-test-{name}-{uuid.uuid4().hex}"


def processes_with(marker: str) -> list[int]:
    """Host pids whose command line contains ``marker`` (zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "cmdline").read_bytes() and ") Z " not in (entry / "stat").read_text():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


# Ordinary programs


@pytest.mark.usefixtures("sandbox")
async def test_prints_and_returns_its_exit_code() -> None:
    result = await run(
        """
        import sys
        print(6 * 7)
        print("to stderr", file=sys.stderr)
        sys.exit(3)
        """
    )
    assert result == CodeRunResult(exit_code=3, stdout="42\n", stderr="to stderr\n", timed_out=False)


@pytest.mark.usefixtures("sandbox")
async def test_writes_in_its_own_folder_only() -> None:
    result = await run(
        """
        import os, pathlib, tempfile
        pathlib.Path("notes.txt").write_text("kept")
        with tempfile.NamedTemporaryFile("w", delete=False) as f:
            f.write("temp")
        print(os.getcwd(), pathlib.Path.home(), pathlib.Path("notes.txt").read_text(), open(f.name).read())
        for target in ("/usr/evil", "/evil", "/sandbox/evil", "/etc/evil"):
            try:
                open(target, "w")
                print("wrote", target)
            except OSError as exc:
                print(type(exc).__name__, exc.errno)
        """
    )
    lines = result.stdout.splitlines()
    assert result.exit_code == 0, result.stderr
    assert lines[0] == "/tmp /tmp kept temp"
    assert lines[1:] == ["OSError 30"] * 4  # EROFS: everything but its folder is read-only


@pytest.mark.usefixtures("sandbox")
async def test_timeout_stops_the_program() -> None:
    # Stopped at the timeout, not at its own end ten minutes later: it never wakes up to say so.
    program = "import time\nprint('started', flush=True)\ntime.sleep(600)\nprint('woke')\n"
    result = await run(program, timeout=STOPPED_AFTER)
    assert result.timed_out and result.exit_code is None and result.stdout == "started\n"


@pytest.mark.usefixtures("sandbox")
async def test_output_is_capped() -> None:
    result = await run("print('x' * 100_000)", max_output=1000)
    assert result.exit_code == 0
    assert result.stdout == "x" * 1000 + "\n[... 99001 more bytes]"


@pytest.mark.usefixtures("sandbox")
async def test_runs_unprivileged_with_its_limits() -> None:
    limits = SandboxLimits(processes=16, open_files=32, cpu_seconds=5)
    result = await run(
        """
        import os, resource
        status = dict(line.split(":\\t") for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        print(os.getuid(), status["CapEff"], status["CapPrm"], status["NoNewPrivs"])
        print(*(resource.getrlimit(getattr(resource, n)) for n in ("RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_CPU")))
        print(sorted(os.listdir("/proc/self/fd")))
        """,
        limits=limits,
    )
    lines = result.stdout.splitlines()
    uid, capabilities = lines[0].split(maxsplit=1)
    assert int(uid) in (ROOT_MODE_UIDS if os.geteuid() == 0 else [SANDBOX_UID]), result.stderr
    assert capabilities == "0000000000000000 0000000000000000 1"  # effective, permitted, no_new_privs
    assert lines[1] == "(16, 16) (32, 32) (5, 5)"
    assert lines[2] == "['0', '1', '2', '3']"  # stdin, stdout, stderr and listdir's own: no leaked descriptor


@pytest.mark.usefixtures("sandbox")
async def test_process_count_is_limited() -> None:
    result = await run(
        """
        import os, time
        children = []
        try:
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        except OSError as exc:
            print("refused after", len(children), exc.errno)
        """,
        limits=SandboxLimits(processes=20),
    )
    refused = result.stdout.split()
    assert refused[:2] == ["refused", "after"] and int(refused[2]) < 20 and refused[3] == "11", result  # EAGAIN


# The escapes of issue 10, each attempted for real


@pytest.mark.usefixtures("sandbox")
async def test_cannot_read_or_write_files_outside(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the-secret-value")
    targets = [str(secret), __file__, str(Path(__file__).parents[2] / "pyproject.toml"), "/etc/passwd"]
    result = await run(
        f"""
        import os
        for target in {targets!r}:
            try:
                print("read", target, os.listdir(target) if os.path.isdir(target) else open(target).read())
            except OSError as exc:
                print(type(exc).__name__, target)
        try:
            open({str(tmp_path / "escaped.txt")!r}, "w").write("out")
        except OSError as exc:
            print(type(exc).__name__, "write")
        """
    )
    assert "the-secret-value" not in result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        *(f"FileNotFoundError {target}" for target in targets),
        "FileNotFoundError write",
    ]
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.usefixtures("sandbox")
async def test_cannot_read_the_server_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOLLMS_ENCRYPTION_KEY", "fake-fernet-key-for-the-test")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-key-for-the-test")
    result = await run(
        f"""
        import os
        print(sorted(os.environ))
        pids = {{str(os.getppid()), "1", {str(os.getpid())!r}}} | {{p for p in os.listdir("/proc") if p.isdigit()}}
        for pid in sorted(pids):
            try:
                print(pid, open(f"/proc/{{pid}}/environ", "rb").read())
            except OSError as exc:
                print(pid, type(exc).__name__)
        """
    )
    everything = result.stdout + result.stderr
    assert result.exit_code == 0, result.stderr
    for leaked in ("fake-fernet-key", "sk-fake-key", "LOLLMS_ENCRYPTION_KEY", "OPENAI_API_KEY"):
        assert leaked not in everything
    assert "b'PATH=/usr/local/bin:/usr/bin:/bin" in everything  # it did read environments: its own
    assert f"\n{os.getpid()} FileNotFoundError" in everything  # the server's pid means nothing in there


@pytest.mark.usefixtures("sandbox")
async def test_no_process_of_the_sandbox_holds_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen from the host, so that the sandbox's own processes count too: its init (the launcher, which
    # supervises the run) and bwrap outside.
    monkeypatch.setenv("LOLLMS_ENCRYPTION_KEY", "fake-fernet-key-for-the-test")
    marker = unique("environment-holder")
    sleeper = f"import time  # {marker}\\ntime.sleep(3600)"
    code = f"import os, sys\nos.execv(sys.executable, [sys.executable, '-c', '{sleeper}'])"
    task = asyncio.create_task(run_python(code, timeout=600.0))  # cancelled below, once seen
    while not (found := processes_with(marker)) and not task.done():
        await asyncio.sleep(0.01)
    assert found, f"the program never ran: {task.result()}"
    chain = found[:1]
    for _ in range(2):  # the program, the launcher (init of the sandbox), bwrap itself
        chain.append(int(Path(f"/proc/{chain[-1]}/stat").read_text().rsplit(")", 1)[1].split()[1]))
    environments = [Path(f"/proc/{pid}/environ").read_bytes() for pid in chain]
    commands = [Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()).name for pid in chain]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert commands[1:] == [Path(sys.executable).name, "bwrap"]
    assert not any(b"fake-fernet-key" in environment for environment in environments)
    assert environments[2] == b"" and b"PATH=/usr/local/bin:/usr/bin:/bin" in environments[0]


@pytest.mark.usefixtures("sandbox")
async def test_cannot_open_network_connections() -> None:
    accepted: list[object] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer.get_extra_info("peername"))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await run(
            f"""
            import socket
            print(socket.if_nameindex())
            for host in ("127.0.0.1", "1.1.1.1"):
                try:
                    socket.create_connection((host, {port}), timeout=2).close()
                    print("connected", host)
                except OSError as exc:
                    print(type(exc).__name__, exc.errno)
            """
        )
    assert accepted == []
    assert result.stdout.splitlines() == [
        "[(1, 'lo')]",  # a network namespace of its own, with a loopback and nothing else
        "ConnectionRefusedError 111",
        "OSError 101",  # ENETUNREACH
    ], result.stderr


@pytest.mark.usefixtures("sandbox")
async def test_cannot_allocate_a_gibibyte() -> None:
    result = await run(
        """
        try:
            block = bytearray(1 << 30)
            print("allocated", len(block))
        except MemoryError:
            print("MemoryError")
        small = bytearray(64 << 20)
        print("64 MiB fine", len(small))
        """
    )
    assert result.stdout.splitlines() == ["MemoryError", "64 MiB fine 67108864"], result.stderr


# The grandchild touches /tmp/tick while it runs, and /tmp/seen when it gets SIGUSR1 (blocked until its handler
# is set, so an early signal waits instead of killing it). The program goes on once the file ``ready`` exists:
# /tmp/seen when the host signals the grandchild it has seen (so it cannot end before it is seen), /tmp/tick
# when nobody watches.
DETACHED_GRANDCHILD = """
import os, signal, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
        loop = (
            "import pathlib, signal, time  # {marker}\\n"
            "signal.signal(signal.SIGUSR1, lambda *_: pathlib.Path('/tmp/seen').touch())\\n"
            "signal.pthread_sigmask(signal.SIG_UNBLOCK, {{signal.SIGUSR1}})\\n"
            "while True: pathlib.Path('/tmp/tick').touch(); time.sleep(0.02)"
        )
        os.execv(sys.executable, [sys.executable, "-c", loop])
    os._exit(0)
os.wait()
while not os.path.exists({ready!r}):
    time.sleep(0.01)
print("detached", flush=True)
time.sleep({sleep})
"""


async def _run_with_detached_grandchild(marker: str, sleep: float, timeout: float) -> CodeRunResult:
    """Run the program, see its grandchild run on this host (and tell it so), then check nothing outlives it."""
    program = DETACHED_GRANDCHILD.format(marker=marker, sleep=sleep, ready="/tmp/seen")
    task = asyncio.create_task(run(program, timeout=timeout))
    seen: list[int] = []
    while not task.done() and not seen:
        seen = processes_with(marker)
        await asyncio.sleep(0.01)
    assert seen, f"the grandchild never started: {task.result()}"
    os.kill(seen[0], signal.SIGUSR1)  # seen: the program may go on
    result = await task
    assert processes_with(marker) == [], "a process of the sandbox outlived run_python"
    return result


@pytest.mark.usefixtures("sandbox")
async def test_a_detached_grandchild_dies_at_the_timeout() -> None:
    # With the old runner (a process group killed at the timeout) this grandchild, in a session of its own,
    # went on touching its file for ever.
    result = await _run_with_detached_grandchild(unique("timeout-grandchild"), sleep=3600, timeout=STOPPED_AFTER)
    assert result.timed_out and result.stdout == "detached\n"


@pytest.mark.usefixtures("sandbox")
async def test_a_detached_grandchild_dies_when_the_program_ends() -> None:
    result = await _run_with_detached_grandchild(unique("exit-grandchild"), sleep=0, timeout=GENEROUS)
    assert result.exit_code == 0 and not result.timed_out and result.stdout == "detached\n"


SYSTEM_PYTHON = Path("/usr/bin/python3")
CHECKOUT = Path(__file__).parents[2]


def _readable_by_everyone(path: Path) -> bool:
    return all(folder.stat().st_mode & 0o005 == 0o005 for folder in [path, *path.parents])


@pytest.mark.skipif(os.geteuid() != 0, reason="as an ordinary user, every other test here covers this mode already")
@pytest.mark.usefixtures("sandbox")
def test_the_same_sandbox_when_the_server_is_an_ordinary_user() -> None:
    # A server that is not root gets a user namespace instead of the switch to nobody: run the runner itself
    # as an ordinary user, with the system's Python (this test's own may live in a folder only root can read).
    if not SYSTEM_PYTHON.is_file() or not _readable_by_everyone(CHECKOUT / "lollms_server" / "core"):
        pytest.skip("needs /usr/bin/python3 and a checkout every user can read")
    marker = unique("user-mode-grandchild")
    program = DETACHED_GRANDCHILD.format(marker=marker, sleep=0, ready="/tmp/tick") + textwrap.dedent(
        """
        import ctypes, resource, socket
        status = dict(line.split(":\\t") for line in open("/proc/self/status").read().splitlines() if ":\\t" in line)
        try:
            init = open("/proc/1/environ").read()
        except PermissionError:
            init = "unreadable"
        print(os.getuid(), status["CapEff"], status["CapBnd"], status["NoNewPrivs"], init)
        libc = ctypes.CDLL(None, use_errno=True)
        print("unshare", libc.unshare(0x10000000), ctypes.get_errno())
        try:
            socket.create_connection(("127.0.0.1", 22), timeout=2)
        except OSError as exc:
            print("network", exc.errno)
        try:
            bytearray(1 << 30)
        except MemoryError:
            print("MemoryError")
        children = []
        try:
            for _ in range(200):
                pid = os.fork()
                if pid == 0:
                    time.sleep(30)
                    os._exit(0)
                children.append(pid)
        except OSError as exc:
            print("refused after", len(children) < 32, exc.errno)
        """
    )
    runner = (
        f"import asyncio, sys\nsys.path.insert(0, {str(CHECKOUT)!r})\n"
        "from lollms_server.core.code_runner import run_python\n"
        f"result = asyncio.run(run_python({program!r}, timeout={GENEROUS}))\n"
        "print(result.stdout + result.stderr, end='')\n"
    )
    completed = subprocess.run(
        [str(SYSTEM_PYTHON), "-I", "-c", runner],
        user=SANDBOX_UID,
        group=SANDBOX_UID,
        extra_groups=[],
        env={"PATH": os.environ["PATH"], "LOLLMS_ENCRYPTION_KEY": "fake-fernet-key-for-the-test"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.splitlines() == [
        "detached",
        # The sandbox's init is the supervisor, out of the program's reach; no user namespace inside either.
        f"{SANDBOX_UID} 0000000000000000 0000000000000000 1 unreadable",
        "unshare -1 1",  # EPERM
        "network 111",
        "MemoryError",
        "refused after True 11",
    ]
    assert processes_with(marker) == []


# No sandbox, no run


@pytest.fixture
def path_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A PATH holding only an empty folder, where a test may put its own ``bwrap``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    yield folder


async def test_refuses_to_run_without_bubblewrap(path_with: Path, tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    with pytest.raises(UnavailableError, match="apt-get install bubblewrap"):
        await run_python(f"open({str(canary)!r}, 'w')")
    assert not canary.exists()
    assert "bubblewrap (bwrap) is not installed" in (await sandbox_problem() or "")


async def test_a_sandbox_that_cannot_start_is_reported_not_bypassed(path_with: Path, tmp_path: Path) -> None:
    # A host that refuses namespaces makes bwrap fail before running anything; this bwrap does just that.
    fake = path_with / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    with pytest.raises(UnavailableError, match="could not start: bwrap: No permissions to create new namespace"):
        await run_python("print('hello')")
    assert "No permissions" in (await sandbox_problem() or "")


# The personality


def _workflow() -> Callable[..., Any]:
    script = Path(__file__).parents[2] / "zoos/personalities/python_builder_executor/scripts/workflow.py"
    module = import_file(script, "_test_python_builder_executor")
    module.TIMEOUT_SECONDS = GENEROUS  # its programs here end at once; starting them may take a loaded machine long
    return module.run_workflow


def _context(answer: str, config_folder: Path) -> dict[str, object]:
    async def generate_text(prompt: str, **params: object) -> str:
        return answer

    config = make_config(config_folder)
    return {"request_info": {"system_prompt": "write code"}, "generate_text": generate_text, "config": config}


@pytest.mark.usefixtures("sandbox")
async def test_personality_runs_the_code_in_the_sandbox(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")
    answer = "Here:\n```python\nimport os\nprint(6 * 7, 'OPENAI_API_KEY' in os.environ)\n```"
    outputs = await _workflow()("compute", {}, _context(answer, tmp_path))
    assert outputs[0] == {
        "type": "text",
        "data": "```python\nimport os\nprint(6 * 7, 'OPENAI_API_KEY' in os.environ)\n```",
    }
    assert outputs[1]["data"] == {
        "stdout": "42 False\n",
        "stderr": "",
        "exit_code": 0,
        "timed_out": False,
        "stopped": None,
    }


async def test_personality_says_why_it_cannot_run(path_with: Path, tmp_path: Path) -> None:
    asked: list[str] = []
    context = _context("```python\nprint(1)\n```", tmp_path)
    context["generate_text"] = lambda prompt, **params: asked.append(prompt)
    outputs = await _workflow()("compute", {}, context)
    assert asked == []  # the model is not even asked to write code that cannot run
    assert len(outputs) == 1 and outputs[0]["type"] == "error"
    assert "apt-get install bubblewrap" in outputs[0]["data"]
