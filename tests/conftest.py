from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from lollms_server.app import create_app
from lollms_server.core.config import ServerConfig
from tests.helpers import TEST_API_KEY, lifespan


@asynccontextmanager
async def running_client(app: FastAPI, api_key: str | None = TEST_API_KEY) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app with its lifespan running (startup and shutdown for real)."""
    headers = {"X-API-Key": api_key} if api_key else {}
    async with lifespan(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers) as client:
            yield client


@pytest.fixture
def client_for() -> Callable[..., object]:
    """``async with client_for(config) as client`` builds the app for a config and runs it."""

    def factory(config: ServerConfig, api_key: str | None = TEST_API_KEY):  # type: ignore[no-untyped-def]
        return running_client(create_app(config), api_key)

    return factory
