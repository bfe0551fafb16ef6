"""Routes of ``/health`` and ``/api/v1`` (spec section 7): thin wrappers over the core."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from lollms_server import __version__
from lollms_server.api.deps import BindingManagerDep, ConfigDep, require_api_key
from lollms_server.api.models import (
    ErrorResponse,
    GetDefaultBindingsResponse,
    HealthResponse,
    ListActiveBindingsResponse,
    ListBindingsResponse,
    ListModelsResponse,
)
from lollms_server.core.model_scan import scan_models_folder
from lollms_server.core.security import ApiKeyVerifier

API_PREFIX = "/api/v1"
_ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in (401, 403, 500, 503)}

public_router = APIRouter()
api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_api_key)], responses=_ERRORS)


@public_router.get("/health", response_model=HealthResponse, summary="Server health (no authentication)")
async def health(request: Request) -> HealthResponse:
    verifier: ApiKeyVerifier = request.app.state.api_key_verifier
    return HealthResponse(status="ok", version=__version__, api_key_required=verifier.required)


@api_router.get("/list_bindings", response_model=ListBindingsResponse, summary="Binding types and instances")
async def list_bindings(manager: BindingManagerDep) -> ListBindingsResponse:
    return ListBindingsResponse(binding_types=manager.list_types(), binding_instances=manager.list_instances())


@api_router.get("/list_active_bindings", response_model=ListActiveBindingsResponse, summary="Instances ready to serve")
async def list_active_bindings(manager: BindingManagerDep) -> ListActiveBindingsResponse:
    return ListActiveBindingsResponse(bindings=manager.list_active_instances())


@api_router.get(
    "/get_default_bindings", response_model=GetDefaultBindingsResponse, summary="Default instances and limits"
)
async def get_default_bindings(config: ConfigDep) -> GetDefaultBindingsResponse:
    return GetDefaultBindingsResponse(defaults=config.defaults)


@api_router.get("/list_models", response_model=ListModelsResponse, summary="Files in models_folder")
async def list_models(config: ConfigDep) -> ListModelsResponse:
    return ListModelsResponse(models=await run_in_threadpool(scan_models_folder, config.paths.models_folder))
