"""``/api/v1/list_personalities``, the personality icons, and ``/api/v1/list_functions``."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import FileResponse

from lollms_server.api.deps import protected_router
from lollms_server.api.errors import error_responses
from lollms_server.api.models import ListFunctionsResponse, ListPersonalitiesResponse
from lollms_server.core.errors import NotFoundError, UnavailableError
from lollms_server.core.functions import FunctionManager
from lollms_server.core.personalities import PersonalityManager

router = protected_router()


async def _personalities(request: Request) -> PersonalityManager:
    manager: PersonalityManager | None = getattr(request.app.state, "personality_manager", None)
    if manager is None:
        raise UnavailableError("the personality manager is not ready (the server is starting or stopping)")
    return manager


async def _functions(request: Request) -> FunctionManager:
    manager: FunctionManager | None = getattr(request.app.state, "function_manager", None)
    if manager is None:
        raise UnavailableError("the function manager is not ready (the server is starting or stopping)")
    return manager


@router.get(
    "/list_personalities",
    response_model=ListPersonalitiesResponse,
    responses=error_responses(503),
    summary="Enabled personalities (with availability), and those that failed to load",
)
async def list_personalities(request: Request) -> ListPersonalitiesResponse:
    manager = await _personalities(request)
    return ListPersonalitiesResponse(
        personalities=manager.list_personalities(), broken=dict(manager.broken), name_collisions=manager.name_collisions
    )


@router.get(
    "/personalities/{personality_id:path}/icon", responses=error_responses(404, 503), summary="A personality's icon"
)
async def personality_icon(personality_id: str, request: Request) -> FileResponse:
    manager = await _personalities(request)
    icon = manager.get(personality_id).icon_file()
    if icon is None:
        raise NotFoundError(f"personality '{personality_id}' has no icon")
    return FileResponse(icon, headers={"Cache-Control": "max-age=3600"})


@router.get(
    "/list_functions",
    response_model=ListFunctionsResponse,
    responses=error_responses(503),
    summary="Functions callable from scripted personalities",
)
async def list_functions(request: Request) -> ListFunctionsResponse:
    manager = await _functions(request)
    return ListFunctionsResponse(
        functions=manager.list_functions(),
        details={name: function.public_info() for name, function in sorted(manager.functions.items())},
        problems=dict(manager.problems),
    )
