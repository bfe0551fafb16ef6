"""What each generation task takes and who can run it: the task's inputs, its parameters as JSON Schema (from
the same model that validates them), and the active binding instances that run it (``get_supported_tasks``,
what their cards declare) — what a client such as the web UI builds its forms and choices from, instead of a
copy of them."""

from __future__ import annotations

import functools
from typing import Any

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.errors import LollmsError
from lollms_server.core.tasks import TASKS


@functools.cache
def parameters_schema(task: str) -> dict[str, Any]:
    """The JSON Schema of a task's parameters (the models never change: built once)."""
    return TASKS[task].parameters.model_json_schema()


async def describe_tasks(bindings: BindingManager, config: ServerConfig) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[str]] = {}
    for name in sorted(bindings.list_active_instances()):
        try:
            binding = await bindings.get_binding(name)
        except LollmsError:  # went down since it was listed
            continue
        runs[name] = binding.get_supported_tasks()
    described = {}
    for task in TASKS.values():
        default = config.default_binding(task.name)
        described[task.name] = {
            "description": task.description,
            "output": task.output,
            "needs_prompt": task.needs_prompt,
            "required_inputs": list(task.required_roles),
            "optional_inputs": list(task.optional_roles),
            "default_binding": default if default in runs and task.name in runs[default] else None,
            "bindings": [name for name, tasks in runs.items() if task.name in tasks],
            "parameters": parameters_schema(task.name),
        }
    return described
