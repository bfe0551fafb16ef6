"""Finding custom functions: every public ``async def`` of the ``.py`` files of the functions folders, named
``<file stem>.<function>``. The server and each function worker process discover them the same way, so a
function has the same name, module and signature in both."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lollms_server.core.plugin_import import import_file


@dataclass(frozen=True)
class RegisteredFunction:
    name: str
    function: Callable[..., Any]
    signature: inspect.Signature
    path: Path

    def public_info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "signature": f"{self.name}{self.signature}",
            "description": inspect.getdoc(self.function) or "",
            "path": str(self.path),
        }


@dataclass
class Discovery:
    """The functions found, and one line per file or function that was rejected."""

    functions: dict[str, RegisteredFunction]
    problems: dict[str, str]


def discover_functions(folders: Iterable[tuple[Path, str]]) -> Discovery:
    """Import every ``.py`` file (not starting with ``_``) of the folders; blocking (imports run user code)."""
    found = Discovery({}, {})
    for folder, source in folders:
        if folder.is_dir():
            for path in sorted(folder.glob("*.py")):
                if not path.stem.startswith("_"):
                    _discover_file(found, path, source)
    return found


def _discover_file(found: Discovery, path: Path, source: str) -> None:
    try:
        module = import_file(path, f"_lollms_functions_{source}_{path.stem}")
    except Exception as exc:
        found.problems[str(path)] = f"import failed: {type(exc).__name__}: {exc}"
        return
    for attribute, value in vars(module).items():
        if attribute.startswith("_") or not inspect.isfunction(value) or value.__module__ != module.__name__:
            continue
        name = f"{path.stem}.{attribute}"
        if not inspect.iscoroutinefunction(value):
            found.problems[name] = "not an async function (functions must be `async def`)"
            continue
        found.functions[name] = RegisteredFunction(name, value, inspect.signature(value), path)
