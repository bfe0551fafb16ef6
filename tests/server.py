"""A real uvicorn server on a free loopback port, in the test's event loop (for disconnect tests)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.types import ASGIApp

STARTUP_SECONDS = 300.0  # start-up checks every binding instance and may load models


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Run ``app`` (lifespan included) under uvicorn on ``port`` (a free one by default); yields the base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        # Started means listening, with the app's start-up done: wait for that state (a loaded machine may take
        # long), never go on before it; a server that fails to start raises its error here.
        deadline = asyncio.get_running_loop().time() + STARTUP_SECONDS
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError(f"the server on port {port} stopped before it started")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"the server on port {port} did not start within {STARTUP_SECONDS:g}s")
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
