"""Dependencies: the services the lifespan puts on ``app.state``, and the /api/v1 router."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from lollms_server.api.auth import PROTECTED_PREFIX
from lollms_server.core.binding_manager import BindingManager
from lollms_server.core.config import ServerConfig
from lollms_server.core.embeddings import EmbeddingService
from lollms_server.core.errors import UnavailableError
from lollms_server.core.functions import FunctionManager
from lollms_server.core.generation import GenerationService
from lollms_server.core.personalities import PersonalityManager


def service(request: Request, attribute: str) -> Any:
    """A service of ``app.state``; 503 while the server is starting or stopping (it is None then)."""
    found = getattr(request.app.state, attribute, None)
    if found is None:
        raise UnavailableError(f"the {attribute.replace('_', ' ')} is not ready (the server is starting or stopping)")
    return found


async def get_config(request: Request) -> ServerConfig:
    config: ServerConfig = request.app.state.config
    return config


async def get_binding_manager(request: Request) -> BindingManager:
    manager: BindingManager = service(request, "binding_manager")
    return manager


async def get_generation_service(request: Request) -> GenerationService:
    generation: GenerationService = service(request, "generation_service")
    return generation


async def get_embedding_service(request: Request) -> EmbeddingService:
    embeddings: EmbeddingService = service(request, "embedding_service")
    return embeddings


async def get_personality_manager(request: Request) -> PersonalityManager:
    personalities: PersonalityManager = service(request, "personality_manager")
    return personalities


async def get_function_manager(request: Request) -> FunctionManager:
    functions: FunctionManager = service(request, "function_manager")
    return functions


ConfigDep = Annotated[ServerConfig, Depends(get_config)]
BindingManagerDep = Annotated[BindingManager, Depends(get_binding_manager)]
GenerationServiceDep = Annotated[GenerationService, Depends(get_generation_service)]
EmbeddingServiceDep = Annotated[EmbeddingService, Depends(get_embedding_service)]
PersonalityManagerDep = Annotated[PersonalityManager, Depends(get_personality_manager)]
FunctionManagerDep = Annotated[FunctionManager, Depends(get_function_manager)]


def protected_router() -> APIRouter:
    """A router under /api/v1, where ApiKeyMiddleware requires a valid key for every route."""
    return APIRouter(prefix=PROTECTED_PREFIX)
