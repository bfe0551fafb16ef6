"""Admin endpoints: per-key usage, the named keys, and reloading keys and binding instances without a restart.
Only admin keys may call them (a user key gets 403)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from lollms_server.api.auth import PROTECTED_PREFIX
from lollms_server.api.errors import error_responses
from lollms_server.core.api_keys import KeyLimits, Principal
from lollms_server.core.errors import BadRequestError, ConfigError, ForbiddenError, NotFoundError


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


@router.post("/keys", status_code=201, responses=error_responses(400), summary="Create a key (its secret shown once)")
async def create_key(body: NewKey, request: Request) -> dict[str, Any]:
    keys = request.app.state.keys
    limits = KeyLimits(body.requests_per_minute, body.tokens_per_minute, body.tokens_per_day, body.concurrent_requests)
    if body.name in keys.records:
        raise BadRequestError(f"a key named '{body.name}' exists; revoke it first or choose another name")
    try:
        secret = keys.create(body.name, body.role, limits, tuple(body.models), tuple(body.personalities), body.expires)
    except ConfigError as exc:
        raise BadRequestError("; ".join(exc.problems)) from None
    await _save_and_apply(request, keys)
    return {"key": secret, **keys.records[body.name].public()}


async def _save_and_apply(request: Request, keys: Any) -> None:
    """Write the key file (off the event loop) and take its keys at once."""

    def save_and_reload() -> None:
        keys.save()
        request.app.state.reload_keys()

    await asyncio.to_thread(save_and_reload)


@router.delete("/keys/{name}", responses=error_responses(404), summary="Revoke a key (at once)")
async def revoke_key(name: str, request: Request) -> dict[str, str]:
    keys = request.app.state.keys
    if name not in keys.records:
        raise NotFoundError(f"no key named '{name}'")
    keys.revoke(name)
    await _save_and_apply(request, keys)
    return {"revoked": name}


@router.post("/reload", responses=error_responses(), summary="Reload the keys and the binding instances")
async def reload(request: Request) -> dict[str, Any]:
    return await request.app.state.reload()
