"""Every /api/v1 route, present and future, refuses a missing key (403) and a wrong key (401)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lollms_server.api.auth import PROTECTED_PREFIXES
from lollms_server.app import create_app
from lollms_server.core.config import hash_api_key
from tests.conftest import running_client
from tests.helpers import TEST_API_KEY, make_config


def api_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Every (method, path) of the protected APIs, read from the app's OpenAPI description."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if path.startswith(PROTECTED_PREFIXES):
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            routes += [(method.upper(), concrete) for method in operations]
    return routes


async def test_every_api_route_requires_a_valid_key(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))
    routes = api_routes(app)
    assert ("GET", "/api/v1/list_bindings") in routes and len(routes) >= 4  # the enumeration itself works
    async with running_client(app, api_key=None) as client:
        for method, path in routes:
            missing = await client.request(method, path, json={})
            assert missing.status_code == 403, (method, path)
            assert "missing API key" in missing.text  # in whichever error shape the path uses
            for headers in ({"X-API-Key": "wrong-key"}, {"Authorization": "Bearer wrong-key"}):
                wrong = await client.request(method, path, json={}, headers=headers)
                assert wrong.status_code == 401, (method, path, headers)
                assert "invalid API key" in wrong.text


async def test_valid_plain_and_digest_keys_are_accepted(tmp_path: Path) -> None:
    digest_only = "another-key-abcdefghijkl"
    config = make_config(tmp_path, security={"allowed_api_keys": [TEST_API_KEY, hash_api_key(digest_only)]})
    async with running_client(create_app(config), api_key=None) as client:
        for key in (TEST_API_KEY, digest_only):
            response = await client.get("/api/v1/list_bindings", headers={"X-API-Key": key})
            assert response.status_code == 200
            bearer = await client.get("/api/v1/list_bindings", headers={"Authorization": f"Bearer {key}"})
            assert bearer.status_code == 200
        # The digest itself is not a key.
        response = await client.get("/api/v1/list_bindings", headers={"X-API-Key": hash_api_key(digest_only)})
        assert response.status_code == 401


async def test_health_is_public(tmp_path: Path) -> None:
    async with running_client(create_app(make_config(tmp_path)), api_key=None) as client:
        response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["api_key_required"] is True


async def test_empty_key_list_disables_auth_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, security={"allowed_api_keys": []})
    async with running_client(create_app(config), api_key=None) as client:
        assert (await client.get("/api/v1/list_bindings")).status_code == 200
        assert (await client.get("/health")).json()["api_key_required"] is False
    assert "AUTHENTICATION IS DISABLED" in caplog.text
