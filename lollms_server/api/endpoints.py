"""Routes of ``/health`` and the informational ``/api/v1`` endpoints (spec section 7)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from lollms_server import __version__
from lollms_server.api.deps import BindingManagerDep, ConfigDep, protected_router
from lollms_server.api.errors import error_responses
from lollms_server.api.models import (
    GetDefaultBindingsResponse,
    GetModelInfoResponse,
    HealthResponse,
    ListActiveBindingsResponse,
    ListAvailableModelsResponse,
    ListBindingsResponse,
    ListModelsResponse,
    ListTasksResponse,
    ModelInfo,
)
from lollms_server.core.api_keys import ApiKeyVerifier
from lollms_server.core.errors import LollmsError
from lollms_server.core.model_access import ModelAccess, loaded_models
from lollms_server.core.model_ids import list_model_ids
from lollms_server.core.model_scan import scan_models_folder
from lollms_server.core.task_catalog import describe_tasks

public_router = APIRouter()
router = protected_router()


@public_router.get("/health", response_model=HealthResponse, summary="Server health (no authentication)")
async def health(request: Request) -> HealthResponse:
    verifier: ApiKeyVerifier = request.app.state.api_key_verifier
    return HealthResponse(status="ok", version=__version__, api_key_required=verifier.required)


@router.get(
    "/list_bindings",
    response_model=ListBindingsResponse,
    responses=error_responses(503),
    summary="Binding types and instances",
)
async def list_bindings(manager: BindingManagerDep) -> ListBindingsResponse:
    return ListBindingsResponse(binding_types=manager.list_types(), binding_instances=manager.list_instances())


@router.get(
    "/list_active_bindings",
    response_model=ListActiveBindingsResponse,
    responses=error_responses(503),
    summary="Instances ready to serve",
)
async def list_active_bindings(manager: BindingManagerDep) -> ListActiveBindingsResponse:
    return ListActiveBindingsResponse(bindings=manager.list_active_instances())


@router.get(
    "/get_default_bindings",
    response_model=GetDefaultBindingsResponse,
    responses=error_responses(),
    summary="Default instances and limits",
)
async def get_default_bindings(config: ConfigDep) -> GetDefaultBindingsResponse:
    """The defaults; a default instance the key may not use shows as null."""
    access = ModelAccess.current()
    defaults = {
        key: None if key.endswith("_binding") and value and not access.may_use_instance(str(value)) else value
        for key, value in config.defaults.items()
    }
    return GetDefaultBindingsResponse(defaults=defaults)


@router.get(
    "/list_tasks",
    response_model=ListTasksResponse,
    responses=error_responses(503),
    summary="Generation types: their inputs, parameters (JSON Schema) and the instances that can run them",
)
async def list_tasks(manager: BindingManagerDep, config: ConfigDep) -> ListTasksResponse:
    return ListTasksResponse.model_validate({"tasks": await describe_tasks(manager, config)})


@router.get(
    "/list_models", response_model=ListModelsResponse, responses=error_responses(), summary="Files in models_folder"
)
async def list_models(config: ConfigDep, manager: BindingManagerDep) -> ListModelsResponse:
    """The files of models_folder; a key limited to some models sees the files of the models it may use."""
    found = await run_in_threadpool(scan_models_folder, config.paths.models_folder)
    if ModelAccess.current().restricts_models:
        usable = {entry["model"] for entry in await list_model_ids(manager)}
        found = {category: [name for name in names if name in usable] for category, names in found.items()}
    return ListModelsResponse(models=found)


@router.get(
    "/list_available_models/{binding_instance_name}",
    response_model=ListAvailableModelsResponse,
    responses=error_responses(404, 501, 503),
    summary="Models a binding instance can use",
)
async def list_available_models(binding_instance_name: str, manager: BindingManagerDep) -> ListAvailableModelsResponse:
    binding = await manager.get_binding(binding_instance_name)
    access = ModelAccess.current()
    models = [
        model
        for model in await binding.list_available_models()
        if access.may_use_model(binding_instance_name, model.get("name"))
    ]
    try:
        parsed = [ModelInfo.model_validate(model) for model in models]
    except ValueError as exc:
        raise LollmsError(f"binding '{binding_instance_name}' listed malformed models: {exc}") from exc
    return ListAvailableModelsResponse(binding_instance_name=binding_instance_name, models=parsed)


_MODEL_INFO_FIELDS = set(GetModelInfoResponse.model_fields) - {"binding_instance_name", "details"}


@router.get(
    "/get_model_info/{binding_instance_name}",
    response_model=GetModelInfoResponse,
    responses=error_responses(404, 501, 503),
    summary="Context size and capabilities of a model",
)
async def get_model_info(
    binding_instance_name: str, manager: BindingManagerDep, model_name: str | None = None
) -> GetModelInfoResponse:
    binding, resolved = await manager.use(binding_instance_name, model_name)
    info: dict[str, Any] = dict(await binding.get_model_info(resolved))
    known = {key: info.pop(key) for key in list(info) if key in _MODEL_INFO_FIELDS}
    details = {**info.pop("details", {}), **info}
    known.setdefault("model_name", resolved)
    return GetModelInfoResponse(binding_instance_name=binding_instance_name, details=details, **known)


@router.get(
    "/status", responses=error_responses(503), summary="What the server is doing: the compute queue and loaded models"
)
async def status(request: Request) -> dict[str, Any]:
    """The compute queue (active, waiting, totals) and the models local bindings hold loaded (names, never
    paths): what the web UI's status page shows beside the bindings, personalities and functions."""
    resources = request.app.state.resource_manager
    return {
        "version": __version__,
        "queue": asdict(resources.stats()),
        "loaded_models": [
            {key: model[key] for key in ("instance", "model", "size", "in_use", "idle_seconds")}
            for model in loaded_models(resources.models)
        ],
    }
