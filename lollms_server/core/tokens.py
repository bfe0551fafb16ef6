"""Tokenizer operations on a binding instance, with the model choice of the spec (named, else active/default),
allowed to the key of the request."""

from __future__ import annotations

import inspect
from typing import Any

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.limits import InputLimits


def _model_kwargs(method: Any, model_name: str | None) -> dict[str, Any]:
    # Bindings written against the spec's signature have no model_name parameter: they use their active model.
    return {"model_name": model_name} if "model_name" in inspect.signature(method).parameters else {}


async def tokenize(
    bindings: BindingManager,
    binding_name: str,
    text: str,
    add_bos: bool,
    add_eos: bool,
    model_name: str | None,
    limits: InputLimits,
) -> list[int]:
    limits.check_text(text, "text")
    binding, model = await bindings.use(binding_name, model_name)
    return await binding.tokenize(text, add_bos=add_bos, add_eos=add_eos, **_model_kwargs(binding.tokenize, model))


async def detokenize(
    bindings: BindingManager, binding_name: str, tokens: list[int], model_name: str | None, limits: InputLimits
) -> str:
    limits.check_sequence(len(tokens), "tokens")
    binding, model = await bindings.use(binding_name, model_name)
    return await binding.detokenize(tokens, **_model_kwargs(binding.detokenize, model))
