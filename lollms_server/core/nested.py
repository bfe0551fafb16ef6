"""Generations a scripted workflow asks for (``context["generate_text"]``, ``context["generate"]``): each one
is a request of its own through the same pipeline — parameter validation, defaults, the task's binding
choice and the compute slot — never a side door to a binding."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lollms_server.core.domain import GenerationRequest, InputData, OutputData

Run = Callable[[GenerationRequest, str], Awaitable[list[OutputData]]]


def _text(role: str, text: str) -> InputData:
    return InputData(type="text", role=role, data=text)


def nested_generators(run: Run, request_id: str, binding_name: str, model_name: str | None) -> dict[str, Any]:
    """``generate_text`` (a fresh text turn on the request's binding and model) and ``generate`` (any task,
    on the binding given or the task's default) for a workflow's context."""
    numbers = itertools.count(1)

    def next_id() -> str:
        return f"{request_id}.{next(numbers)}"

    async def generate_text(prompt: str, system_prompt: str | None = None, **params: Any) -> str:
        items = ([_text("system_context", system_prompt)] if system_prompt else []) + [_text("user_prompt", prompt)]
        request = GenerationRequest(items, binding_name=binding_name, model_name=model_name, parameters=params)
        outputs = await run(request, next_id())
        return "".join(str(output.data) for output in outputs if output.type == "text")

    async def generate(
        generation_type: str = "ttt",
        prompt: str | None = None,
        input_data: list[Mapping[str, Any] | InputData] | None = None,
        parameters: Mapping[str, Any] | None = None,
        binding_name: str | None = None,
        model_name: str | None = None,
    ) -> list[dict[str, Any]]:
        items = [item if isinstance(item, InputData) else InputData.model_validate(item) for item in input_data or []]
        if prompt is not None:
            items.append(_text("user_prompt", prompt))
        request = GenerationRequest(
            items,
            binding_name=binding_name,
            model_name=model_name,
            generation_type=generation_type,
            parameters=dict(parameters or {}),
        )
        return [output.model_dump() for output in await run(request, next_id())]

    return {"generate_text": generate_text, "generate": generate}
