"""The core is the domain: it imports nothing from the HTTP edge (ARCHITECTURE: api -> core, never back)."""

from __future__ import annotations

import ast
from pathlib import Path

import lollms_server.core

CORE = Path(lollms_server.core.__file__).parent


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_core_imports_nothing_from_the_api() -> None:
    offenders = {
        str(path.relative_to(CORE)): sorted(name for name in imported_modules(path) if name.startswith(edge))
        for path in sorted(CORE.rglob("*.py"))
        for edge in ("lollms_server.api", "fastapi", "starlette")
        if any(name.startswith(edge) for name in imported_modules(path))
    }
    assert offenders == {}


def test_the_spec_import_path_still_offers_the_domain_types() -> None:
    from lollms_server.api import models
    from lollms_server.core import domain

    for name in ("InputData", "OutputData", "StreamChunk"):
        assert getattr(models, name) is getattr(domain, name)
