"""The lock files: what ``install_core.py`` installs resolves to versions that were tested together.

``locks/`` at the top of the checkout holds one file per install profile, all resolved by ``uv pip compile``
(universal: every platform and Python the project supports, with environment markers) from ``pyproject.toml``:

- ``all.txt``: every extra and ``dev``, pins only. The versions of every other file, and the constraints of an install
  whose extras match no profile (``install_core.py --extras openai``).
- ``run.txt``: ``./run.sh`` and ``./install.sh`` (llama.cpp and offline speech); ``tests.txt``: ``./run_tests.sh``.
  Both with the hash of every file, installed in pip's hash-checking mode.

Each file's header records a fingerprint of the dependency declarations of ``pyproject.toml``: an install refuses a
lock older than them, and ``tests/test_dependencies.py`` fails. ``python install_core.py --relock`` refreshes the
files (``--relock --latest``: newest versions everywhere). Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "locks"
PYPROJECT = ROOT / "pyproject.toml"
# Extras of each profile: an install asking exactly these extras (with what is already installed) is hash-checked.
PROFILES: dict[str, tuple[str, ...]] = {
    "all": ("all", "dev"),
    "run": ("llamacpp", "speech"),
    "tests": ("dev", "diffusers", "llamacpp", "speech"),
}
HASHED = ("run", "tests")
# torch's CUDA runtime on Linux: the CPU build that install_core.py installs needs none of it (gigabytes).
CUDA_PACKAGES = re.compile(r"^(nvidia-.*|cuda-.*|triton)$")
_FINGERPRINT = re.compile(r"^# pyproject fingerprint: ([0-9a-f]{64})$", re.M)


def path_of(profile: str) -> Path:
    return LOCKS / f"{profile}.txt"


def profile_for(extras: Iterable[str]) -> str | None:
    """The hash-checked profile installing exactly ``extras``, if any."""
    wanted = set(extras)
    return next((name for name in HASHED if set(PROFILES[name]) == wanted), None)


def _load_toml(text: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: pip ships a copy of tomli
        from pip._vendor import tomli as tomllib
    return tomllib.loads(text)


def project(pyproject_text: str | None = None) -> dict[str, Any]:
    """The [project] table of pyproject.toml (or of ``pyproject_text``)."""
    return _load_toml(PYPROJECT.read_text(encoding="utf-8") if pyproject_text is None else pyproject_text)["project"]


def fingerprint(pyproject_text: str | None = None) -> str:
    """A hash of what the locks are resolved from: requires-python, the dependencies and every extra."""
    project_table = project(pyproject_text)
    declared = {
        "requires-python": project_table.get("requires-python"),
        "dependencies": sorted(project_table.get("dependencies", [])),
        "optional-dependencies": {k: sorted(v) for k, v in project_table.get("optional-dependencies", {}).items()},
    }
    return hashlib.sha256(json.dumps(declared, sort_keys=True).encode()).hexdigest()


def recorded_fingerprint(profile: str) -> str | None:
    path = path_of(profile)
    if not path.is_file():
        return None
    found = _FINGERPRINT.search(path.read_text(encoding="utf-8"))
    return found.group(1) if found else None


def stale(profiles: Iterable[str] = PROFILES) -> list[str]:
    """The profiles whose lock is missing or older than pyproject.toml's declarations."""
    current = fingerprint()
    return [name for name in profiles if recorded_fingerprint(name) != current]


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    def line(self) -> str:
        """The pin as a requirements line (hashes included), for pip."""
        marker = f" ; {self.marker}" if self.marker else ""
        return f"{self.name}=={self.version}{marker}" + "".join(f" --hash={digest}" for digest in self.hashes)


def pins(profile: str) -> list[Pin]:
    """The pins of a lock file, in its order."""
    text = path_of(profile).read_text(encoding="utf-8")
    found = []
    for entry in re.sub(r"\\\n", " ", text).splitlines():
        entry = entry.split(" #", 1)[0].strip()
        if not entry or entry.startswith(("#", "-")):
            continue
        requirement, _, _ = entry.partition(" --hash")
        spec, _, marker = requirement.partition(";")
        name, _, version = spec.strip().partition("==")
        hashes = tuple(re.findall(r"--hash=(\S+)", entry))
        found.append(Pin(name.strip().lower(), version.strip(), marker.strip() or None, hashes))
    return found


def pin_of(profile: str, name: str) -> Pin | None:
    return next((pin for pin in pins(profile) if pin.name == name), None)


def relock(uv: list[str], upgrade: bool = False, run: Callable[[list[str]], None] | None = None) -> None:
    """Resolve every profile again with ``uv`` (a command line), keeping the current pins unless ``upgrade``.

    ``all`` first (pins only), then each hashed profile constrained to ``all``'s versions, so a version is the same in
    every file. torch's CUDA runtime is left out (see CUDA_PACKAGES): resolving finds its names, another pass drops
    them (and any they brought)."""
    runner = run or _run_in_root
    LOCKS.mkdir(exist_ok=True)
    overrides = LOCKS / ".cuda-overrides.txt"
    cuda: set[str] = set()
    try:
        for _ in range(4):  # until no new CUDA package appears in any file
            overrides.write_text("".join(f"{name} ; sys_platform == 'never'\n" for name in sorted(cuda)))
            _compile(runner, uv, "all", cuda, overrides, upgrade, hashed=False)
            for name in HASHED:
                _compile(runner, uv, name, cuda, overrides, upgrade, hashed=True)
            found = {pin.name for profile in PROFILES for pin in pins(profile) if CUDA_PACKAGES.match(pin.name)}
            if not found - cuda:
                break
            cuda |= found
    finally:
        overrides.unlink(missing_ok=True)


def _run_in_root(command: list[str]) -> None:
    subprocess.run(command, check=True, cwd=ROOT)


def _compile(
    run: Callable[[list[str]], None],
    uv: list[str],
    profile: str,
    cuda: set[str],
    overrides: Path,
    upgrade: bool,
    hashed: bool,
) -> None:
    target = path_of(profile)
    command = [*uv, "pip", "compile", "pyproject.toml", "--universal", "--python-version", "3.10"]
    command += ["--python-preference", "only-system", "--no-header", "--quiet", "-o", str(target)]
    command += [argument for extra in PROFILES[profile] for argument in ("--extra", extra)]
    command += ["--override", str(overrides)]
    command += [argument for name in sorted(cuda) for argument in ("--no-emit-package", name)]
    command += ["--generate-hashes", "-c", str(path_of("all"))] if hashed else []
    command += ["--upgrade"] if upgrade else []
    if target.is_file():  # uv keeps the pins of the file it writes: drop our header, keep the pins
        target.write_text(_without_header(target.read_text(encoding="utf-8")), encoding="utf-8")
    run(command)
    header = (
        f"# The {profile} profile of lollms_server: extras {','.join(PROFILES[profile])}"
        f"{', with the hash of every file' if hashed else ', pins only (the versions of every other lock)'}.\n"
        "# Written by `python install_core.py --relock` (uv pip compile, universal); do not edit by hand.\n"
        f"# pyproject fingerprint: {fingerprint()}\n"
    )
    target.write_text(header + _without_header(target.read_text(encoding="utf-8")), encoding="utf-8")


def _without_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("# ") and not re.match(r"# +via ", lines[0]):
        lines.pop(0)
    return "".join(lines)
