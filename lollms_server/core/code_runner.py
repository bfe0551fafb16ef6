"""Running untrusted Python (code written by a model) in a subprocess: timeout, temporary folder, no secrets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

# Only these variables reach the child: API keys, encryption keys and tokens in the server's environment
# stay out of reach of generated code.
_PASSED_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "SYSTEMROOT")


@dataclass(frozen=True)
class CodeRunResult:
    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool


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


def _kill_group(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        if os.name == "nt":
            process.kill()
        else:
            os.killpg(process.pid, signal.SIGKILL)


async def run_python(code: str, timeout: float = 10.0, max_output: int = 20_000) -> CodeRunResult:
    """Run ``code`` with ``python -I`` in a fresh temporary folder (its cwd and HOME), killed after ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="lollms_code_") as workdir:
        script = Path(workdir) / "main.py"
        script.write_text(code, encoding="utf-8")
        environment = {key: os.environ[key] for key in _PASSED_ENVIRONMENT if key in os.environ}
        environment.update({"HOME": workdir, "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1"})
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            str(script),
            cwd=workdir,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=os.name != "nt",  # its own process group, so its children die with it
        )
        readers = asyncio.gather(_read_capped(process.stdout, max_output), _read_capped(process.stderr, max_output))
        timed_out = False
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except asyncio.TimeoutError:
            timed_out = True
        except BaseException:  # cancelled: stop everything and let the cancellation through
            _kill_group(process)
            readers.cancel()
            raise
        _kill_group(process)  # after a timeout or a normal exit alike, nothing it started may outlive it
        stdout, stderr = await readers
        return CodeRunResult(
            exit_code=None if timed_out else process.returncode, stdout=stdout, stderr=stderr, timed_out=timed_out
        )
