"""Resource manager: each strategy's concurrency, queue timeout, cancelled waiters, re-entrancy."""

from __future__ import annotations

import asyncio

import pytest

from lollms_server.core.errors import QueueTimeoutError
from lollms_server.core.resource_manager import ResourceManager


async def peak_concurrency(manager: ResourceManager, tasks: int) -> int:
    running = peak = 0

    async def work() -> None:
        nonlocal running, peak
        async with manager.acquire_gpu_resource("work"):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.02)
            running -= 1

    await asyncio.gather(*(work() for _ in range(tasks)))
    return peak


@pytest.mark.parametrize(
    ("strategy", "limit", "expected"), [("semaphore", 3, 3), ("simple_lock", 3, 1), ("none", 3, 6)]
)
async def test_strategy_bounds_concurrency(strategy: str, limit: int, expected: int) -> None:
    manager = ResourceManager(strategy, limit, queue_timeout=10)
    assert await peak_concurrency(manager, 6) == expected
    stats = manager.stats()
    assert stats.active == 0 and stats.waiting == 0


async def test_queue_timeout() -> None:
    manager = ResourceManager("simple_lock", 1, queue_timeout=0.05)
    holder = await manager.admit("holder")
    with pytest.raises(QueueTimeoutError, match="0.05s"):
        await manager.admit("waiter")
    assert manager.stats().timed_out_total == 1 and manager.stats().waiting == 0
    holder.release()
    (await manager.admit("after")).release()


async def test_cancelled_waiter_neither_leaks_nor_double_releases() -> None:
    manager = ResourceManager("semaphore", 1, queue_timeout=10)
    holder = await manager.admit("holder")
    waiter = asyncio.create_task(manager.admit("waiter"))
    await asyncio.sleep(0.01)
    assert manager.stats().waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    holder.release()
    holder.release()  # idempotent
    assert manager.stats().active == 0
    # Exactly one slot is free again: a second concurrent admission must wait.
    first = await manager.admit("first")
    with pytest.raises(QueueTimeoutError):
        await manager.admit("second", timeout=0.05)
    first.release()


async def test_nested_acquisition_inside_a_held_slot_does_not_deadlock() -> None:
    manager = ResourceManager("simple_lock", 1, queue_timeout=0.2)
    async with manager.acquire_gpu_resource("outer"):
        async with manager.acquire_gpu_resource("inner (a binding loading its model)"):
            assert manager.stats().active == 1
    assert manager.stats().active == 0
