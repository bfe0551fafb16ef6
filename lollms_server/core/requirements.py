"""Declared pip requirements: which are missing (``lollms_server.installing`` installs them, on an operator's
command only)."""

from __future__ import annotations

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
