"""What each generation task takes and who can run it: the task's inputs, its parameters as JSON Schema (from
the same model that validates them), and the active binding instances whose modalities fit — what a client
such as the web UI builds its forms and choices from, instead of a copy of them."""

from __future__ import annotations

import functools
from typing import Any

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.errors import LollmsError
from lollms_server.core.tasks import TASKS, GenerationTask

# The modality an input role carries, which a binding must accept to run a task needing it.
ROLE_MODALITIES = {"input_image": "image", "mask_image": "image", "input_audio": "audio"}


def _fits(task: GenerationTask, inputs: list[str], outputs: list[str]) -> bool:
    needed = {ROLE_MODALITIES[role] for role in task.required_roles if role in ROLE_MODALITIES}
    if task.needs_prompt:
        needed.add("text")
    return task.output in outputs and needed <= set(inputs)


@functools.cache
def parameters_schema(task: str) -> dict[str, Any]:
    """The JSON Schema of a task's parameters (the models never change: built once)."""
    return TASKS[task].parameters.model_json_schema()


async def describe_tasks(bindings: BindingManager, config: ServerConfig) -> dict[str, dict[str, Any]]:
    modalities: dict[str, tuple[list[str], list[str]]] = {}
    for name in sorted(bindings.list_active_instances()):
        try:
            binding = await bindings.get_binding(name)
        except LollmsError:  # went down since it was listed
            continue
        modalities[name] = (binding.get_supported_input_modalities(), binding.get_supported_output_modalities())
    described = {}
    for task in TASKS.values():
        default = config.defaults.get(f"{task.name}_binding")
        described[task.name] = {
            "description": task.description,
            "output": task.output,
            "needs_prompt": task.needs_prompt,
            "required_inputs": list(task.required_roles),
            "optional_inputs": list(task.optional_roles),
            "default_binding": default if default in modalities else None,
            "bindings": [name for name, (inputs, outputs) in modalities.items() if _fits(task, inputs, outputs)],
            "parameters": parameters_schema(task.name),
        }
    return described
