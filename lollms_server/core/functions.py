"""FunctionManager: custom ``async def`` functions callable from scripted personalities (spec "Functions").

The server discovers the functions (their names, signatures and docstrings, for listings and tool schemas) and
checks each call's arguments; the call itself runs in a worker process (:mod:`lollms_server.core.function_pool`)
bounded by ``server.function_timeout`` and ``server.function_memory_bytes``, so no function can freeze the
event loop or exhaust the server's memory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lollms_server.core.function_discovery import RegisteredFunction, discover_functions
from lollms_server.core.function_pool import FunctionCallError, FunctionWorkers, WorkerSettings

logger = logging.getLogger(__name__)

__all__ = ["FunctionManager", "RegisteredFunction"]


class FunctionManager:
    """Discovers functions named ``<file stem>.<function>`` and runs them with checked arguments."""

    def __init__(
        self,
        folders: list[tuple[Path, str]],
        timeout: float = 30.0,
        memory_bytes: int = 1 << 30,
        workers: int = 2,
    ) -> None:
        self.folders = folders
        self.timeout = timeout
        self.functions: dict[str, RegisteredFunction] = {}
        self.problems: dict[str, str] = {}
        settings = WorkerSettings(tuple((str(folder), source) for folder, source in folders), memory_bytes)
        self.workers = FunctionWorkers(settings, workers)

    def discover(self) -> None:
        """Import every .py file of the folders (blocking: run it in a thread); problems are recorded."""
        found = discover_functions(self.folders)
        self.functions, self.problems = found.functions, found.problems
        for where, problem in found.problems.items():
            logger.warning("Functions: %s: %s", where, problem)
        logger.info("Discovered %d functions (%d problems)", len(self.functions), len(self.problems))

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
            return True, await self.workers.call(name, bound.args, bound.kwargs, self.timeout)
        except FunctionCallError as exc:
            return False, str(exc)

    async def close(self) -> None:
        """Stop the worker processes (the server is stopping)."""
        await self.workers.close()
