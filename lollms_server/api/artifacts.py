"""``GET /api/v1/artifacts/{id}``: a stored binary output, with the API key like every /api/v1 route."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import FileResponse

from lollms_server.api.deps import protected_router, service
from lollms_server.api.errors import error_responses
from lollms_server.core.artifacts import ArtifactStore

router = protected_router()
# The core hands out ARTIFACT_PATH_PREFIX + id; this route serves exactly those paths (tested).
ARTIFACT_ROUTE = "/artifacts/{artifact_id}"


async def get_artifact_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = service(request, "artifact_store")
    return store


ArtifactStoreDep = Annotated[ArtifactStore, Depends(get_artifact_store)]


@router.get(
    ARTIFACT_ROUTE,
    response_class=FileResponse,
    responses=error_responses(404, 503),
    summary="A stored output (parameters.output_format: url), served with its content type until it expires",
)
async def get_artifact(artifact_id: str, store: ArtifactStoreDep, request: Request) -> FileResponse:
    found = await store.get(artifact_id, request.state.principal)  # the key's own, or any for an admin
    remaining = max(0, math.floor(found.artifact.expires_at - store.clock()))
    return FileResponse(
        found.file,
        media_type=found.artifact.mime_type,
        headers={
            "Cache-Control": f"private, max-age={remaining}",
            "X-Content-Type-Options": "nosniff",
            # A stored SVG or HTML opened in a browser runs no script in our origin.
            "Content-Security-Policy": "sandbox",
        },
    )
