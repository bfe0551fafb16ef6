"""``GET /version`` and the ``/lollms/v1`` helpers that lollms_client's ``lollms`` binding calls."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict

from lollms_server import __version__
from lollms_server.api.deps import BindingManagerDep, ConfigDep
from lollms_server.api.openai_compat.routes import model_objects
from lollms_server.core import tokens
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.bindings import Binding
from lollms_server.core.config import ServerConfig

public_router = APIRouter(tags=["lollms_client"])
router = APIRouter(prefix="/lollms/v1", tags=["lollms_client"])


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())
    model: str | None = None


class TextRequest(_Request):
    text: str


class TokensRequest(_Request):
    tokens: list[int]


async def _binding(model: str | None, bindings: BindingManager, config: ServerConfig) -> tuple[Binding, str | None]:
    """The binding and model of a model id, or the default text binding."""
    if model:
        choice = bindings.model_ids.parse(model)
        if choice.binding_name is not None:
            return await bindings.get_binding(choice.binding_name), choice.model_name
    return await bindings.get_binding(config.binding_for("ttt")), None


@public_router.get("/version", summary="Server version (public)")
async def version() -> dict[str, str]:
    return {"version": __version__, "server": "lollms_server"}


@router.get("/models", summary="The same models as /v1/models")
async def models(request: Request, bindings: BindingManagerDep) -> dict[str, Any]:
    return {"object": "list", "data": await model_objects(request, bindings)}


@router.post("/tokenize", summary="Tokens of a text for a model id")
async def tokenize(body: TextRequest, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, Any]:
    binding, model = await _binding(body.model, bindings, config)
    ids = await tokens.tokenize(binding, body.text, False, False, model, config.input_limits)
    return {"tokens": ids, "count": len(ids)}


@router.post("/detokenize", summary="Text of tokens for a model id")
async def detokenize(body: TokensRequest, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, str]:
    binding, model = await _binding(body.model, bindings, config)
    return {"text": await tokens.detokenize(binding, body.tokens, model, config.input_limits)}


@router.post("/context_size", summary="Context size of a model id")
async def context_size(body: _Request, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, int]:
    binding, model = await _binding(body.model, bindings, config)
    info = await binding.get_model_info(await binding.resolve_model(model))
    return {"context_size": int(info.get("context_size") or config.defaults["default_context_size"])}
