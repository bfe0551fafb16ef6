"""``/api/v1/list_personalities``, the personality icons, and ``/api/v1/list_functions``."""

from __future__ import annotations

from fastapi.responses import FileResponse

from lollms_server.api.deps import FunctionManagerDep, PersonalityManagerDep, protected_router
from lollms_server.api.errors import error_responses
from lollms_server.api.models import ListFunctionsResponse, ListPersonalitiesResponse
from lollms_server.core.errors import NotFoundError

router = protected_router()


@router.get(
    "/list_personalities",
    response_model=ListPersonalitiesResponse,
    responses=error_responses(503),
    summary="Enabled personalities (with availability), and those that failed to load",
)
async def list_personalities(manager: PersonalityManagerDep) -> ListPersonalitiesResponse:
    return ListPersonalitiesResponse(
        personalities=manager.list_personalities(),
        broken=manager.list_broken(),
        name_collisions=manager.name_collisions,
    )


@router.get(
    "/personalities/{personality_id:path}/icon", responses=error_responses(404, 503), summary="A personality's icon"
)
async def personality_icon(personality_id: str, manager: PersonalityManagerDep) -> FileResponse:
    icon = manager.get(personality_id).icon_file()
    if icon is None:
        raise NotFoundError(f"personality '{personality_id}' has no icon")
    return FileResponse(icon, headers={"Cache-Control": "max-age=3600", "Vary": "Origin"})


@router.get(
    "/list_functions",
    response_model=ListFunctionsResponse,
    responses=error_responses(503),
    summary="Functions callable from scripted personalities",
)
async def list_functions(manager: FunctionManagerDep) -> ListFunctionsResponse:
    return ListFunctionsResponse(
        functions=manager.list_functions(),
        details={name: function.public_info() for name, function in sorted(manager.functions.items())},
        problems=dict(manager.problems),
    )
