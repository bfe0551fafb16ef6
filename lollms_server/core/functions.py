"""FunctionManager: custom ``async def`` functions callable from scripted personalities (spec "Functions")."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lollms_server.core.plugin_import import import_file

logger = logging.getLogger(__name__)


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


class FunctionManager:
    """Discovers functions named ``<file stem>.<function>`` and runs them with checked arguments."""

    def __init__(self, folders: list[tuple[Path, str]], timeout: float = 30.0) -> None:
        self.folders = folders
        self.timeout = timeout
        self.functions: dict[str, RegisteredFunction] = {}
        self.problems: dict[str, str] = {}

    def discover(self) -> None:
        """Import every .py file of the folders (blocking: run it in a thread); problems are recorded."""
        for folder, source in self.folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.py")):
                if not path.stem.startswith("_"):
                    self._discover_file(path, source)
        logger.info("Discovered %d functions (%d problems)", len(self.functions), len(self.problems))

    def _discover_file(self, path: Path, source: str) -> None:
        try:
            module = import_file(path, f"_lollms_functions_{source}_{path.stem}")
        except Exception as exc:
            self.problems[str(path)] = f"import failed: {type(exc).__name__}: {exc}"
            logger.warning("Functions file %s failed to import: %s", path, exc)
            return
        for attribute, value in vars(module).items():
            if attribute.startswith("_") or not inspect.isfunction(value) or value.__module__ != module.__name__:
                continue
            name = f"{path.stem}.{attribute}"
            if not inspect.iscoroutinefunction(value):
                self.problems[name] = "not an async function (functions must be `async def`)"
                continue
            self.functions[name] = RegisteredFunction(name, value, inspect.signature(value), path)

    def list_functions(self) -> list[str]:
        return sorted(self.functions)

    async def execute_function(self, name: str, args: dict[str, Any] | None = None) -> tuple[bool, Any]:
        """(True, result) or (False, a message saying what went wrong); never raises."""
        registered = self.functions.get(name)
        if registered is None:
            return False, f"unknown function '{name}'; available: {', '.join(self.list_functions()) or 'none'}"
        try:
            bound = registered.signature.bind(**(args or {}))
        except TypeError as exc:
            return False, f"bad arguments for {name}{registered.signature}: {exc}"
        try:
            result = await asyncio.wait_for(registered.function(*bound.args, **bound.kwargs), self.timeout)
        except asyncio.TimeoutError:
            return False, f"{name} did not finish within {self.timeout:g}s"
        except Exception as exc:
            logger.warning("Function %s failed", name, exc_info=exc)
            return False, f"{name} failed: {type(exc).__name__}: {exc}"
        return True, result
