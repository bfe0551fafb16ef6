"""Dependencies: services from ``app.state`` and the API key check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.errors import UnavailableError
from lollms_server.core.generation import GenerationService
from lollms_server.core.security import ApiKeyVerifier

API_KEY_HEADER = "X-API-Key"
API_PREFIX = "/api/v1"
_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


def get_config(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


def get_binding_manager(request: Request) -> BindingManager:
    manager: BindingManager | None = getattr(request.app.state, "binding_manager", None)
    if manager is None:
        raise UnavailableError("the binding manager is not ready (the server is starting or stopping)")
    return manager


def get_generation_service(request: Request) -> GenerationService:
    service: GenerationService | None = getattr(request.app.state, "generation_service", None)
    if service is None:
        raise UnavailableError("the generation service is not ready (the server is starting or stopping)")
    return service


async def require_api_key(request: Request, api_key: Annotated[str | None, Security(_api_key_header)]) -> None:
    """403 without a key, 401 with a wrong one (spec "Authentication"); nothing when auth is disabled."""
    verifier: ApiKeyVerifier = request.app.state.api_key_verifier
    if not verifier.required:
        return
    if not api_key:
        raise HTTPException(status_code=403, detail=f"missing API key: send it in the {API_KEY_HEADER} header")
    if not verifier.is_valid(api_key):
        raise HTTPException(status_code=401, detail="invalid API key")


ConfigDep = Annotated[ServerConfig, Depends(get_config)]
BindingManagerDep = Annotated[BindingManager, Depends(get_binding_manager)]
GenerationServiceDep = Annotated[GenerationService, Depends(get_generation_service)]


def protected_router() -> APIRouter:
    """A router under /api/v1 whose every route requires a valid API key."""
    return APIRouter(prefix=API_PREFIX, dependencies=[Depends(require_api_key)])
