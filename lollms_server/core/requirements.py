"""Declared pip requirements: which are missing, and the explicit operator action that installs them."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import InvalidRequirement, Requirement


def missing_requirements(requirements: list[str]) -> list[str]:
    """The requirements not satisfied in this environment, each with the reason when not plainly absent."""
    missing = []
    for spec in requirements:
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            missing.append(f"{spec} (not a valid requirement)")
            continue
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            found = version(requirement.name)
        except PackageNotFoundError:
            missing.append(spec)
            continue
        if requirement.specifier and not requirement.specifier.contains(found, prereleases=True):
            missing.append(f"{spec} (found {found})")
    return missing


def install_requirements(requirements: list[str]) -> int:
    """Run pip for ``requirements`` in this interpreter; only ever called from an operator command."""
    if not requirements:
        return 0
    return subprocess.call([sys.executable, "-m", "pip", "install", *requirements])
