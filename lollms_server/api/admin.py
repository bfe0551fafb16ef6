"""Admin endpoints: per-key usage, the named keys, and reloading keys and binding instances without a restart.
Only admin keys may call them (a user key gets 403)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.auth import PROTECTED_PREFIX
from lollms_server.api.errors import error_responses
from lollms_server.core.api_keys import KeyFile, KeyLimits, Principal
from lollms_server.core.errors import BadRequestError, ConfigError, ForbiddenError


def admin_only(request: Request) -> Principal:
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not principal.is_admin:
        name = principal.name if principal else "this key"
        raise ForbiddenError(f"admin endpoints need an admin key; '{name}' is a user key")
    return principal


router = APIRouter(prefix=f"{PROTECTED_PREFIX}/admin", tags=["admin"], dependencies=[Depends(admin_only)])


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    role: Literal["admin", "user"] = "user"
    expires: str | None = Field(default=None, max_length=40, description="ISO date or time (UTC unless given).")
    models: list[str] = Field(default_factory=list, max_length=100)
    personalities: list[str] = Field(default_factory=list, max_length=100)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    concurrent_requests: int | None = Field(default=None, ge=1)


@router.get("/usage", responses=error_responses(503), summary="Requests, errors and tokens per key and model")
async def usage(request: Request) -> dict[str, Any]:
    return {"keys": await request.app.state.limit_store.usage()}


@router.get("/keys", summary="The named keys (never their secrets or digests)")
async def list_keys(request: Request) -> dict[str, Any]:
    return {"keys": [record.public() for record in request.app.state.keys.records.values()]}


@router.post(
    "/keys", status_code=201, responses=error_responses(400, 503), summary="Create a key (its secret shown once)"
)
async def create_key(body: NewKey, request: Request) -> dict[str, Any]:
    limits = KeyLimits(body.requests_per_minute, body.tokens_per_minute, body.tokens_per_day, body.concurrent_requests)

    def create(keys: KeyFile) -> dict[str, Any]:
        try:
            secret = keys.create(
                body.name, body.role, limits, tuple(body.models), tuple(body.personalities), body.expires
            )
        except ConfigError as exc:  # a name in use, an expiry that is no date (a broken key file stays a 503)
            raise BadRequestError("; ".join(exc.problems)) from None
        return {"key": secret, **keys.records[body.name].public()}

    created: dict[str, Any] = await request.app.state.change_keys(create)
    return created


@router.delete("/keys/{name}", responses=error_responses(404, 503), summary="Revoke a key (at once)")
async def revoke_key(name: str, request: Request) -> dict[str, str]:
    await request.app.state.change_keys(lambda keys: keys.revoke(name))
    return {"revoked": name}


@router.post("/reload", responses=error_responses(), summary="Reload the keys and the binding instances")
async def reload(request: Request) -> dict[str, Any]:
    return await request.app.state.reload()
