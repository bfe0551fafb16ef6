"""Dependencies: the services on ``app.state``, and the /api/v1 router."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from lollms_server.api.auth import PROTECTED_PREFIX
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.embeddings import EmbeddingService
from lollms_server.core.errors import UnavailableError
from lollms_server.core.generation import GenerationService


async def get_config(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


async def get_binding_manager(request: Request) -> BindingManager:
    manager: BindingManager | None = getattr(request.app.state, "binding_manager", None)
    if manager is None:
        raise UnavailableError("the binding manager is not ready (the server is starting or stopping)")
    return manager


async def get_generation_service(request: Request) -> GenerationService:
    service: GenerationService | None = getattr(request.app.state, "generation_service", None)
    if service is None:
        raise UnavailableError("the generation service is not ready (the server is starting or stopping)")
    return service


async def get_embedding_service(request: Request) -> EmbeddingService:
    service: EmbeddingService | None = getattr(request.app.state, "embedding_service", None)
    if service is None:
        raise UnavailableError("the embedding service is not ready (the server is starting or stopping)")
    return service


ConfigDep = Annotated[ServerConfig, Depends(get_config)]
BindingManagerDep = Annotated[BindingManager, Depends(get_binding_manager)]
GenerationServiceDep = Annotated[GenerationService, Depends(get_generation_service)]
EmbeddingServiceDep = Annotated[EmbeddingService, Depends(get_embedding_service)]


def protected_router() -> APIRouter:
    """A router under /api/v1, where ApiKeyMiddleware requires a valid key for every route."""
    return APIRouter(prefix=PROTECTED_PREFIX)
