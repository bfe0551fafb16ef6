"""router_binding over three loopback OpenAI-compatible backends (each an openai_binding instance): requests
spread over them, a dead backend is skipped with no failed request (failover before the first byte, streams
included), it gets traffic again once it is back (recovery), and the per-backend cap makes requests wait."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lollms_server.app import create_app
from tests.core.test_binding_manager import free_port
from tests.helpers import TEST_API_KEY, make_config, wait_until, write_instance
from tests.server import serving
from tests.zoo.openai_fake_server import FakeOpenAI

pytest.importorskip("openai", reason="install with ./run_tests.sh (the openai extra)")

BODY = {"input_data": [{"type": "text", "role": "user_prompt", "data": "hi"}], "model_name": "fake-text"}


class Backend:
    """A fake OpenAI server that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.fake = FakeOpenAI(reply="from the pool")
        self.port = free_port()
        self._stack: contextlib.AsyncExitStack | None = None

    async def start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        await self._stack.enter_async_context(serving(self.fake.app(), port=self.port))

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    @property
    def served(self) -> int:
        return len(self.fake.requests)


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[tuple[str, list[Backend], Any]]:
    backends = [Backend() for _ in range(3)]
    for backend in backends:
        await backend.start()
    names = ["b1", "b2", "b3"]
    config = make_config(
        tmp_path,
        bindings_map={**dict.fromkeys(names, "openai_binding"), "pool": "router_binding"},
        defaults={"ttt_binding": "pool"},
    )
    for name, backend in zip(names, backends, strict=True):
        write_instance(
            config,
            name,
            {"type": "openai_binding", "base_url": f"http://127.0.0.1:{backend.port}/v1", "api_key": "sk-x",
             "default_model": "fake-text", "max_retries": 0, "timeout": 60},
        )  # fmt: skip
    write_instance(
        config,
        "pool",
        {"type": "router_binding", "backends": names, "strategy": "round_robin", "failure_cooldown": 0.5,
         "max_concurrency_per_backend": 1, "queue_timeout": 30},
    )  # fmt: skip
    app = create_app(config)
    try:
        async with serving(app) as url:
            yield url, backends, app
    finally:
        for backend in backends:
            await backend.stop()


async def generate(client: httpx.AsyncClient, stream: bool = False) -> httpx.Response:
    return await client.post("/api/v1/generate", json={**BODY, "stream": stream}, headers={"X-API-Key": TEST_API_KEY})


async def test_spreading_failover_and_recovery(pool: tuple[str, list[Backend], Any]) -> None:
    url, backends, app = pool
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answers = [await generate(client) for _ in range(6)]
        assert all(answer.status_code == 200 for answer in answers)
        assert answers[0].json()["output"][0]["data"] == "from the pool"
        assert [backend.served for backend in backends] == [2, 2, 2]  # round robin

        await backends[1].stop()  # b2 dies
        before = [backend.served for backend in backends]
        answers = [await generate(client, stream=index % 2 == 1) for index in range(6)]
        assert [answer.status_code for answer in answers] == [200] * 6  # failover: no request failed
        assert all("from the pool" in answer.text for answer in answers)
        assert backends[1].served == before[1]
        assert sum(b.served for b in backends) - sum(before) == 6

        await backends[1].start()  # b2 is back: after its rest it serves again
        router = app.state.binding_manager.instances["pool"].binding
        await wait_until(lambda: router.routing_state()["b2"]["resting"] == 0)
        recovered = backends[1].served
        for _ in range(6):
            assert (await generate(client)).status_code == 200
        assert backends[1].served > recovered


async def test_the_cap_per_backend_makes_requests_wait(pool: tuple[str, list[Backend], Any]) -> None:
    url, backends, app = pool
    release = asyncio.Event()
    for backend in backends:
        backend.fake.hold = release  # the backends answer nothing until every one has a request
    router = app.state.binding_manager.instances["pool"].binding
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        requests = [asyncio.create_task(generate(client)) for _ in range(9)]
        # Each backend holds one request, the six others wait in the router (without a cap they would overlap).
        await wait_until(lambda: [backend.fake.in_flight for backend in backends] == [1, 1, 1])
        assert sum(state["running"] for state in router.routing_state().values()) == 3
        release.set()
        answers = await asyncio.gather(*requests)
    assert [answer.status_code for answer in answers] == [200] * 9
    # Counted by each backend itself: never two at once on one (cap 1), yet all nine served.
    assert [backend.fake.peak_in_flight for backend in backends] == [1, 1, 1]
    assert sum(backend.served for backend in backends) == 9
