"""Resource manager: each strategy's concurrency, queue timeout, bounded queue, fairness, cancelled waiters,
re-entrancy."""

from __future__ import annotations

import asyncio

import pytest

from lollms_server.core.errors import QueueFullError, QueueTimeoutError
from lollms_server.core.resource_manager import MAX_BYPASS, ResourceManager
from tests.helpers import wait_until


async def peak_concurrency(manager: ResourceManager, tasks: int) -> int:
    running = peak = 0
    release = asyncio.Event()

    async def work() -> None:
        nonlocal running, peak
        async with manager.acquire_gpu_resource("work"):
            running += 1
            peak = max(peak, running)
            await release.wait()
            running -= 1

    workers = [asyncio.create_task(work()) for _ in range(tasks)]
    # Every task holds a slot or waits for one: only then may the holders go (no overlap left to chance).
    await wait_until(lambda: running + manager.stats().waiting == tasks)
    release.set()
    await asyncio.gather(*workers)
    return peak


@pytest.mark.parametrize(
    ("strategy", "limit", "expected"), [("semaphore", 3, 3), ("simple_lock", 3, 1), ("none", 3, 6)]
)
async def test_strategy_bounds_concurrency(strategy: str, limit: int, expected: int) -> None:
    manager = ResourceManager(strategy, limit, queue_timeout=60)
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
    await wait_until(lambda: manager.stats().waiting == 1)
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


async def test_queue_is_bounded_and_refusals_say_when_to_retry() -> None:
    manager = ResourceManager("semaphore", 1, queue_timeout=30, max_queue=2)
    holder = await manager.admit("holder")
    waiters = [asyncio.create_task(manager.admit(f"waiter {i}")) for i in range(2)]
    await wait_until(lambda: manager.stats().waiting == 2)
    with pytest.raises(QueueFullError) as refused:
        await manager.admit("one too many")
    assert refused.value.retry_after is not None and refused.value.retry_after >= 1
    assert manager.stats().rejected_total == 1
    holder.release()
    for waiter in waiters:
        (await waiter).release()
    assert manager.stats().active == 0 and manager.stats().waiting == 0


async def test_queue_timeout_carries_retry_after() -> None:
    manager = ResourceManager("simple_lock", 1, queue_timeout=0.05)
    holder = await manager.admit("holder")
    with pytest.raises(QueueTimeoutError) as timed_out:
        await manager.admit("waiter")
    assert timed_out.value.retry_after is not None and timed_out.value.retry_after >= 1
    holder.release()


async def test_waiters_are_served_first_come_first_served() -> None:
    manager = ResourceManager("semaphore", 1, queue_timeout=30)
    holder = await manager.admit("holder")
    order: list[int] = []

    async def waiter(index: int) -> None:
        slot = await manager.admit(f"waiter {index}")
        order.append(index)
        slot.release()

    tasks = []
    for index in range(10):
        tasks.append(asyncio.create_task(waiter(index)))
        await wait_until(lambda index=index: manager.stats().waiting == index + 1)
    holder.release()
    await asyncio.gather(*tasks)
    assert order == list(range(10))


async def test_a_loaded_model_goes_first_a_bounded_number_of_times() -> None:
    """Alternating requests for two models: those for the loaded one go first, but nobody waits forever."""
    manager = ResourceManager("semaphore", 1, queue_timeout=30)
    loaded, other = ("llama", "a.gguf"), ("llama", "b.gguf")

    async def unload() -> None:
        return None

    manager.models.add(loaded, unload, keep_alive=None)  # model a is loaded (and stays: in use by "us")
    holder = await manager.admit("holder", model=loaded)
    order: list[str] = []

    async def waiter(name: str, model: tuple[str, str]) -> None:
        slot = await manager.admit(name, model=model)
        order.append(name)
        slot.release()

    names = [f"b{i}" if i % 2 else f"a{i}" for i in range(1, 13)]  # b1 a2 b3 a4 ...: a 'b' is the oldest
    tasks = []
    for index, name in enumerate(names):
        tasks.append(asyncio.create_task(waiter(name, loaded if name.startswith("a") else other)))
        await wait_until(lambda index=index: manager.stats().waiting == index + 1)
    holder.release()
    await asyncio.gather(*tasks)
    # b1 (the oldest) is passed over by a2, a4, a6, a8 (MAX_BYPASS times), then served; after it, the
    # remaining requests for the loaded model go before the other b's, each b being passed over at most
    # MAX_BYPASS times in all.
    assert order[: MAX_BYPASS + 1] == ["a2", "a4", "a6", "a8", "b1"]
    for name in names:
        later_arrivals_served_before = [
            other for other in order[: order.index(name)] if names.index(other) > names.index(name)
        ]
        assert len(later_arrivals_served_before) <= MAX_BYPASS, (name, order)
