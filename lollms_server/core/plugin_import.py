"""Importing user-supplied Python files (binding types, workflow scripts, function files) by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def import_file(path: Path, module_name: str, package_folder: Path | None = None) -> ModuleType:
    """Execute ``path`` as module ``module_name``; with ``package_folder`` it is a package whose own
    files can be imported relatively. A failure leaves nothing half-registered in ``sys.modules``."""
    locations = [str(package_folder)] if package_folder else None
    spec = importlib.util.spec_from_file_location(module_name, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before exec: relative imports and dataclasses look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module
