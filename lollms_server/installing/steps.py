"""An install told one line per step: what it did and how long it took; every command's output goes to a log file
instead, and a failure shows the step, the log's last lines and its path. Standard library only (the installer
runs before anything is installed)."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

TAIL_LINES = 25
_TITLE_WIDTH = 22


class StepFailed(Exception):
    """A step could not be done; the message says what, in a line."""


def duration(seconds: float) -> str:
    """'0.4 s', '12 s', '3 min 05 s'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


class Step:
    """The step under way: ``note`` says what it is doing now, ``done`` what it did (shown on its line)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.result = "done"

    def note(self, text: str) -> None:
        self._out.write(f"{text} ... ")
        self._out.flush()

    def done(self, text: str) -> None:
        self.result = text


class InstallLog:
    """Runs the commands of an install with their output in ``path``; ``step`` prints one line per step."""

    def __init__(self, path: Path, out: TextIO | None = None) -> None:
        self.path = path
        self._out = out or sys.stdout
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", encoding="utf-8")
        self._file.write(f"lollms_server install, {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> InstallLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def say(self, text: str) -> None:
        """A line for the person watching (and the log)."""
        self._out.write(text + "\n")
        self._out.flush()
        self._file.write(text + "\n")
        self._file.flush()

    def record(self, text: str) -> None:
        """Text for the log only."""
        self._file.write(text.rstrip("\n") + "\n")
        self._file.flush()

    def run(self, command: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> None:
        """Run ``command`` with its output in the log; a non-zero exit raises StepFailed."""
        code, _ = self.read(command, cwd, env)
        if code != 0:
            raise StepFailed(f"`{shlex.join(_short(command))}` exited with code {code}")

    def read(
        self, command: list[str], cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        """Run ``command``; its exit code and output (also written to the log)."""
        self._file.write(f"\n$ {shlex.join(command)}\n")
        self._file.flush()
        try:
            environment = dict(env) if env is not None else None
            result = subprocess.run(
                command, cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        except OSError as exc:  # the program is not there, or not executable
            raise StepFailed(f"{command[0]} could not start: {exc}") from exc
        self._file.write(result.stdout)
        self._file.flush()
        return result.returncode, result.stdout

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        self._file.flush()
        return self.path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[Step]:
        """One step: its title now, its result and duration when it ends. A failure prints the step, the log's
        last lines and its path, and exits with status 1."""
        self._out.write(f"  {title:<{_TITLE_WIDTH}} ")
        self._out.flush()
        self._file.write(f"\n== {title}\n")
        self._file.flush()
        step = Step(self._out)
        started = time.monotonic()
        try:
            yield step
        except StepFailed as exc:
            self._fail(title, str(exc), time.monotonic() - started)
        except KeyboardInterrupt:
            self._out.write("interrupted\n")
            raise
        self._out.write(f"{step.result} ({duration(time.monotonic() - started)})\n")
        self._out.flush()
        self._file.write(f"== {title}: {step.result}\n")
        self._file.flush()

    def _fail(self, title: str, reason: str, seconds: float) -> None:
        self._file.write(f"== {title}: FAILED: {reason}\n")
        self._file.flush()
        lines = self.tail()
        self._out.write(f"FAILED after {duration(seconds)}\n\n{title} failed: {reason}\n")
        self._out.write(f"The last lines of the log:\n{os.linesep.join('    ' + line for line in lines)}\n")
        self._out.write(f"The whole log: {self.path}\n")
        self._out.flush()
        raise SystemExit(1)


def _short(command: list[str]) -> list[str]:
    """A command as a person would type it: the venv's python as 'python', at most 8 arguments."""
    shown = ["python" if index == 0 and "python" in Path(part).name else part for index, part in enumerate(command)]
    return shown if len(shown) <= 8 else [*shown[:8], "..."]
