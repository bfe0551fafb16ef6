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
from lollms_server.core.config import ServerConfig
from lollms_server.core.errors import NotFoundError
from lollms_server.core.model_ids import list_model_ids
from lollms_server.core.task_catalog import describe_tasks

public_router = APIRouter(tags=["lollms_client"])
router = APIRouter(prefix="/lollms/v1", tags=["lollms_client"])


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())
    model: str | None = None


class TextRequest(_Request):
    text: str


class TokensRequest(_Request):
    tokens: list[int]


def _instance(model: str | None, bindings: BindingManager, config: ServerConfig) -> tuple[str, str | None]:
    """The binding instance and model of a model id, or the default text binding."""
    if model:
        choice = bindings.model_ids.parse(model)
        if choice.binding_name is not None:
            return choice.binding_name, choice.model_name
    return config.binding_for("ttt"), None


@public_router.get("/version", summary="Server version (public)")
async def version() -> dict[str, str]:
    return {"version": __version__, "server": "lollms_server"}


@router.get("/models", summary="The same models as /v1/models")
async def models(request: Request, bindings: BindingManagerDep) -> dict[str, Any]:
    return {"object": "list", "data": await model_objects(request, bindings)}


@router.post("/tokenize", summary="Tokens of a text for a model id")
async def tokenize(body: TextRequest, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, Any]:
    name, model = _instance(body.model, bindings, config)
    ids = await tokens.tokenize(bindings, name, body.text, False, False, model, config.input_limits)
    return {"tokens": ids, "count": len(ids)}


@router.post("/detokenize", summary="Text of tokens for a model id")
async def detokenize(body: TokensRequest, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, str]:
    name, model = _instance(body.model, bindings, config)
    return {"text": await tokens.detokenize(bindings, name, body.tokens, model, config.input_limits)}


@router.post("/context_size", summary="Context size of a model id")
async def context_size(body: _Request, bindings: BindingManagerDep, config: ConfigDep) -> dict[str, int]:
    binding, resolved = await bindings.use(*_instance(body.model, bindings, config))
    info = await binding.get_model_info(resolved)
    return {"context_size": int(info.get("context_size") or config.defaults["default_context_size"])}


# lollms_client's binding types (list_models_by_type) -> the generation task whose output they list.
CLIENT_BINDING_TYPES = {"llm": "ttt", "tti": "tti", "tts": "tts", "stt": "stt", "ttv": "ttv", "ttm": "ttm"}


@router.get("/personalities", summary="The available personalities (lollms_client's listMountedPersonalities)")
async def personalities(request: Request) -> list[dict[str, Any]]:
    manager = getattr(request.app.state, "personality_manager", None)
    listed = manager.list_personalities() if manager is not None else {}
    return [
        {
            "id": personality_id,
            "name": info["name"],
            "category": info["category"],
            "author": info["author"],
            "description": info["description"],
            "model": f"personality/{personality_id}",
        }
        for personality_id, info in listed.items()
        if info["available"]
    ]


@router.get("/capabilities", summary="The tasks this server serves, and the binding instance of each")
async def capabilities(bindings: BindingManagerDep, config: ConfigDep) -> dict[str, Any]:
    described = await describe_tasks(bindings, config)  # a default that does not run its task serves nothing
    serving = {task: info["default_binding"] for task, info in described.items() if info["default_binding"]}
    embedding = config.default_binding("embedding")
    if embedding in bindings.list_active_instances():
        serving["embedding"] = embedding
    return {"capabilities": list(serving), "active_bindings": serving}


@router.get("/{binding_type}/models", summary="Models of one kind (llm, tti, tts, stt, ttv, ttm)")
async def models_by_type(
    binding_type: str, bindings: BindingManagerDep, binding_alias: str | None = None
) -> dict[str, Any]:
    task = CLIENT_BINDING_TYPES.get(binding_type)
    if task is None:
        raise NotFoundError(f"no model kind '{binding_type}'; use one of {', '.join(CLIENT_BINDING_TYPES)}")
    entries = [
        {"id": entry["id"], "object": "model", "owned_by": entry["binding"], "binding": entry["binding"]}
        for entry in await list_model_ids(bindings)
        if task in entry["tasks"] and binding_alias in (None, entry["binding"])
    ]
    return {"object": "list", "data": entries}


@router.get("/audio/voices", summary="Voices of the default text-to-speech binding (lollms_client's tts_list_voices)")
async def voices(bindings: BindingManagerDep, config: ConfigDep) -> dict[str, Any]:
    binding, model = await bindings.use(config.binding_for("tts"), None)
    details = (await binding.get_model_info(model)).get("details") or {}
    return {"object": "list", "data": [{"id": voice, "name": voice} for voice in details.get("voices") or []]}
