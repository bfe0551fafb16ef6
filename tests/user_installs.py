"""Installing and starting the server the way users do, for tests/test_user_install.py and bench/bench_first_run.py:
a fresh copy of the checkout, an environment without the test venv, a process whose output is read as it comes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTALL_DEADLINE = 1800  # seconds: a cold pip cache and a llama.cpp build on a loaded 2-core machine


def base_python() -> str:
    """The interpreter the test venv was made from: what a user's `python3` would be."""
    return getattr(sys, "_base_executable", None) or sys.executable


def user_environment(**extra: str) -> dict[str, str]:
    """This environment without what points into the test venv or its configuration."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "LOLLMS_CONFIG_DIR", "PYTHONHOME")
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin)
    return {**env, **extra}


def fresh_clone(target: Path, with_webui: bool = True) -> Path:
    """The checkout's files as a fresh clone has them (tracked, and new files not ignored), modes and times kept;
    with ``with_webui``, the built web UI when there is one (else the install builds it, as on a fresh clone)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    if with_webui and (ROOT / "webui" / "dist" / "index.html").is_file():
        shutil.copytree(ROOT / "webui" / "dist", target / "webui" / "dist")
    return target


class Console:
    """A process's output, read as it comes; ``wait_for`` waits until a line holds a text or the process ends."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # the end
            self._changed.notify_all()

    def wait_for(self, text: str, deadline: float) -> bool:
        with self._changed:
            return self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.process.poll() is not None,
                timeout=deadline,
            ) and any(text in line for line in self.lines)

    def close(self) -> None:
        """After the process ended: the rest of its output read, the pipe closed."""
        self._reader.join(timeout=120)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def text(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


@contextmanager
def started(command: list[str], cwd: Path, env: dict[str, str], ready: str = "Uvicorn running") -> Iterator[Console]:
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    console = Console(process)
    try:
        assert console.wait_for(ready, INSTALL_DEADLINE), f"never ready:\n{console.text()[-6000:]}"
        yield console
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        console.close()


def api_key(console: Console) -> str:
    return next(line.strip() for line in console.lines if line.strip().startswith("lollms_"))
