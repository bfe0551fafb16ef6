"""Every import is declared where it is used, and the locks are what pyproject.toml declares.

- deptry (well kept, fast) over the package, the zoos and the root scripts: an import of an undeclared, transitive
  or dev-only package, or a declared package nothing imports, fails.
- Each binding, checked against its own card: what it imports is in its card's requirements (or the core
  dependencies), and the card's requirements are exactly those of the pyproject.toml extra it names.
- The lock files: resolved from the current pyproject.toml, every declared requirement pinned at a version it
  accepts, one version per package across the files, and a hash on every pin of the hash-checked profiles.
"""

from __future__ import annotations

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from lollms_server import installing
from lollms_server.installing import locks

ROOT = Path(__file__).resolve().parent.parent
BINDINGS = ROOT / "zoos" / "bindings"
PROJECT = locks.project()
SELF = canonicalize_name(PROJECT["name"])


def requirements_of(extras: tuple[str, ...] | list[str]) -> list[Requirement]:
    """The requirements an install with ``extras`` asks for: the core's, each extra's, self-references expanded."""
    found = [Requirement(spec) for spec in PROJECT["dependencies"]]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in map(Requirement, PROJECT["optional-dependencies"][extra]):
            if canonicalize_name(requirement.name) == SELF:
                todo += sorted(requirement.extras)
            else:
                found.append(requirement)
    return found


def third_party_imports(folder: Path) -> dict[str, str]:
    """The top-level modules the Python files under ``folder`` import (at any depth), each with where first."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("lollms_server", "zoos", "__future__"):
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_deptry_finds_no_dependency_issue() -> None:
    """Undeclared (DEP001), unused (DEP002), transitive (DEP003) or dev-only (DEP004) imports: configured in
    pyproject.toml's [tool.deptry]."""
    result = subprocess.run(
        [sys.executable, "-m", "deptry", ".", "--no-ansi"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deptry_catches_a_dev_only_import(tmp_path: Path) -> None:
    """The check can fail: httpx declared only in the dev extra (the defect of a fresh ./run.sh) is reported."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    broken = pyproject.replace('    "httpx>=0.27",\n    # The lean relay', "    # The lean relay", 1)
    broken = broken.replace('ollama = ["ollama>=0.4", "httpx>=0.27"]', 'ollama = ["ollama>=0.4"]')
    broken = broken.replace('gemini = ["google-genai>=1.0", "httpx>=0.27", ', 'gemini = ["google-genai>=1.0", ')
    assert broken.count("httpx>=0.27") == 1  # what is left: the dev extra's
    (tmp_path / "pyproject.toml").write_text(broken, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "deptry", ".", "--no-ansi", "--config", str(tmp_path / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 1
    assert "core/url_inputs.py" in report and "DEP004 'httpx' imported but declared as a dev dependency" in report


def binding_folders() -> list[Path]:
    return sorted(path for path in BINDINGS.iterdir() if (path / "binding_card.yaml").is_file())


@pytest.mark.parametrize("folder", binding_folders(), ids=lambda path: path.name)
def test_a_binding_imports_only_what_its_card_or_the_core_declares(folder: Path) -> None:
    card = yaml.safe_load((folder / "binding_card.yaml").read_text(encoding="utf-8"))
    declared = {canonicalize_name(Requirement(spec).name) for spec in card["requirements"] + PROJECT["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    undeclared = []
    for module, where in third_party_imports(folder).items():
        provided_by = {canonicalize_name(name) for name in distributions.get(module, [])}
        assert provided_by, f"{where}: '{module}' is not installed here, so its package cannot be told"
        if not provided_by & declared:
            undeclared.append(f"{where}: '{module}' (from {', '.join(sorted(provided_by))})")
    assert undeclared == [], f"imports missing from {folder.name}'s binding_card.yaml requirements"


def _requirement_set(specs: list[str]) -> set[str]:
    return {str(Requirement(spec)) for spec in specs}


def test_each_card_names_the_extra_holding_exactly_its_requirements() -> None:
    extras = PROJECT["optional-dependencies"]
    core = _requirement_set(PROJECT["dependencies"])
    by_extra: dict[str, set[str]] = {}
    for folder in binding_folders():
        card = yaml.safe_load((folder / "binding_card.yaml").read_text(encoding="utf-8"))
        assert "extra" in card, f"{folder.name}: the card names no extra (null: the core dependencies hold them)"
        requirements = _requirement_set(card["requirements"])
        if card["extra"] is None:
            assert requirements <= core, f"{folder.name}: not in the core dependencies: {requirements - core}"
            continue
        assert card["extra"] in extras, f"{folder.name}: no extra '{card['extra']}' in pyproject.toml"
        by_extra.setdefault(card["extra"], set()).update(requirements)
    for extra, requirements in by_extra.items():
        assert _requirement_set(extras[extra]) == requirements, f"extra '{extra}' and its bindings' cards differ"
    everything = {name for spec in extras["all"] for name in Requirement(spec).extras}
    assert set(by_extra) <= everything, f"extras missing from 'all': {set(by_extra) - everything}"


def test_the_locks_are_resolved_from_the_current_pyproject() -> None:
    assert locks.stale() == [], "pyproject.toml changed since the locks were written: `python install_core.py --relock`"


def test_the_fingerprint_follows_every_dependency_declaration() -> None:
    """The drift check can fail: a dependency added, an extra changed or a bound moved each changes it."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    current = locks.fingerprint(text)
    assert current == locks.fingerprint()
    edits = [
        text.replace('    "orjson>=3.9",\n', '    "orjson>=3.9",\n    "six",\n', 1),
        text.replace('llamacpp = ["llama-cpp-python>=0.3.16"', 'llamacpp = ["llama-cpp-python>=0.3.17"', 1),
        text.replace('requires-python = ">=3.10"', 'requires-python = ">=3.11"', 1),
    ]
    for edited in edits:
        assert edited != text and locks.fingerprint(edited) != current
    # What does not change the dependencies does not change it.
    assert locks.fingerprint(text.replace("line-length = 120", "line-length = 100")) == current


def _marker_holds(marker: str | None) -> bool:
    from packaging.markers import Marker

    return marker is None or Marker(marker).evaluate(dict(default_environment()))


@pytest.mark.parametrize("profile", sorted(locks.PROFILES))
def test_every_declared_requirement_is_pinned_at_a_version_it_accepts(profile: str) -> None:
    pinned = {pin.name: pin.version for pin in locks.pins(profile) if _marker_holds(pin.marker)}
    problems = []
    for requirement in requirements_of(locks.PROFILES[profile]):
        if requirement.marker is not None and not requirement.marker.evaluate(dict(default_environment())):
            continue
        name = canonicalize_name(requirement.name)
        if name not in pinned:
            problems.append(f"{requirement}: not in locks/{profile}.txt")
        elif not requirement.specifier.contains(pinned[name], prereleases=True):
            problems.append(f"{requirement}: locked at {pinned[name]}")
    assert problems == []


def test_a_package_has_one_version_in_every_lock_and_hashes_where_checked() -> None:
    """The hash-checked profiles take their versions from all.txt (the markers of a pin may differ between files:
    each file splits Python versions where its own packages need it). Here, the same version is installed."""
    versions: dict[str, set[str]] = {}
    here = {}
    for pin in locks.pins("all"):
        versions.setdefault(pin.name, set()).add(pin.version)
        if _marker_holds(pin.marker):
            here[pin.name] = pin.version
    for profile in locks.HASHED:
        for pin in locks.pins(profile):
            assert pin.version in versions.get(pin.name, set()), f"{profile}: {pin.name}=={pin.version} not in all.txt"
            if _marker_holds(pin.marker):
                assert here.get(pin.name) == pin.version, (
                    f"{profile}: {pin.name}=={pin.version}, all.txt: {here.get(pin.name)}"
                )
            assert pin.hashes, f"locks/{profile}.txt: {pin.name} has no hash"
    assert not any(locks.CUDA_PACKAGES.match(name) for name in versions)  # the CPU build of torch needs none


def test_the_installer_constants_are_the_locked_versions() -> None:
    """llama-cpp-python (built by us) and torch (the CPU build, installed apart) at the versions of the locks."""
    for profile in ("run", "tests"):
        llama = locks.pin_of(profile, "llama-cpp-python")
        assert llama is not None and llama.version == installing.LLAMA_CPP_VERSION
        assert llama.hashes  # the source archive is checked before it is compiled
    torch = locks.pin_of("tests", "torch")
    assert torch is not None and torch.version == installing.TORCH_VERSION
    assert f"torch=={installing.TORCH_VERSION}" in PROJECT["optional-dependencies"]["diffusers"]


def test_the_profiles_are_what_the_scripts_install() -> None:
    run_sh = (ROOT / "run.sh").read_text(encoding="utf-8")
    run_tests = (ROOT / "run_tests.sh").read_text(encoding="utf-8")
    assert f"--extras {','.join(locks.PROFILES['run'])} " in run_sh
    assert f"--extras {','.join(locks.PROFILES['tests'])} " in run_tests
    assert locks.profile_for(["speech", "llamacpp"]) == "run" and locks.profile_for(["openai"]) is None
