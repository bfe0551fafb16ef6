"""Scripts of a checkout (``configuration_wizard.py``, ``python -m lollms_server``, ``python
lollms_server/main.py``) run with the checkout's ``venv`` even when started with another Python, so the commands
in the README work without activating it. Standard library only: this runs before anything else is importable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / "venv"


def venv_python() -> Path | None:
    for candidate in (VENV / "bin" / "python", VENV / "Scripts" / "python.exe"):
        if candidate.exists():
            return candidate
    return None


def in_project_venv() -> None:
    """Re-run this command with the checkout's venv interpreter when it exists and is not the one running."""
    python = venv_python()
    if python is None or Path(sys.prefix).resolve() == VENV.resolve() or os.environ.get("LOLLMS_NO_RELAUNCH"):
        return
    arguments = [str(python), *sys.orig_argv[1:]] if hasattr(sys, "orig_argv") else [str(python), *sys.argv]
    if os.name == "nt":  # no exec on Windows: run it and pass its exit code on
        sys.exit(subprocess.call(arguments))
    os.execv(str(python), arguments)
