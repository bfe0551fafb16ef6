"""Queueing through the API: a request that waits too long for a slot gets 408 with Retry-After, in both modes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lollms_server.app import create_app
from tests.conftest import running_client
from tests.helpers import add_scripted_binding, make_config, prompt, scripted_hold, wait_until


async def test_queue_timeout_is_408_and_the_holder_finishes(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        bindings_map={"local": "scripted_binding"},
        defaults={"ttt_binding": "local"},
        resource_manager={"gpu_strategy": "simple_lock", "queue_timeout": 1},
    )
    add_scripted_binding(config, "local", local=True)
    # The holder keeps the slot until both waiters have had their answer: they time out whatever the machine's
    # speed (a holder that merely took long could finish first on a loaded machine).
    slow = {"input_data": [prompt("hold")], "parameters": {"chunks": ["a"] * 12, "hold": "holder"}}
    quick = {"input_data": [prompt("wait")]}
    app = create_app(config)
    async with running_client(app) as client:
        release = scripted_hold("holder")

        async def late(body: dict) -> object:
            await wait_until(lambda: app.state.resource_manager.stats().active == 1)  # the holder has the slot
            return await client.post("/api/v1/generate", json=body)

        async def waiters() -> tuple[object, object]:
            answers = await asyncio.gather(late(quick), late({**quick, "stream": True}))
            release.set()
            return answers[0], answers[1]

        holder, (waiter, stream_waiter) = await asyncio.gather(client.post("/api/v1/generate", json=slow), waiters())
        after = await client.post("/api/v1/generate", json=quick)
    assert holder.status_code == 200 and holder.json()["output"][0]["data"] == "a" * 12
    assert waiter.status_code == 408 and waiter.json()["code"] == "queue_timeout"
    assert stream_waiter.status_code == 408
    assert int(waiter.headers["Retry-After"]) >= 1 and int(stream_waiter.headers["Retry-After"]) >= 1
    assert after.status_code == 200
