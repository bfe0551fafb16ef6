"""Token reservations decide the same way in one process and in Redis: granted up to what the key has left, refused
when not even the prompt and one token fit, settled to what was used in the windows they were made in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lollms_server.core.api_keys import KeyLimits
from lollms_server.core.quotas import LimitStore, MemoryLimitStore, Windows
from tests.server import free_port

NOON = 1_768_478_430.0  # the middle of a UTC minute and day: no window ends during a test
LIMITS = KeyLimits(tokens_per_minute=100, tokens_per_day=150)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[LimitStore]:
    if request.param == "memory":
        yield MemoryLimitStore()
        return
    shared = pytest.importorskip("tests.api.test_shared_limits", reason="needs redis-server")
    from lollms_server.core.redis_state import RedisLimitStore

    server = shared.Redis(free_port())
    server.start()
    redis_store = RedisLimitStore(f"redis://127.0.0.1:{server.port}/0", prefix="t:")
    try:
        yield redis_store
    finally:
        await redis_store.close()
        server.stop()


async def minute_count(store: LimitStore) -> int:
    """The key's tokens counted in the current minute, as the admission check reads them."""
    admission = await store.admit("k", KeyLimits(tokens_per_minute=100), now=NOON)
    if admission.lease is not None:
        await store.release("k", admission.lease)
    return 100 - int(admission.headers["x-ratelimit-remaining-tokens"])


async def test_grants_up_to_what_is_left_then_refuses(store: LimitStore) -> None:
    first = await store.reserve("k", LIMITS, wanted=70, prompt=10, now=NOON)
    second = await store.reserve("k", LIMITS, wanted=70, prompt=10, now=NOON)  # 30 left this minute
    third = await store.reserve("k", LIMITS, wanted=70, prompt=10, now=NOON)  # 0 left: not even the prompt fits
    assert (first.granted, first.refused_by) == (70, None)
    assert (second.granted, second.refused_by) == (30, None)
    assert (third.granted, third.refused_by, third.left) == (0, "tokens_per_minute", 0)
    assert third.retry_after == Windows.at(NOON).minute_reset
    assert await minute_count(store) == 100


async def test_the_day_limit_refuses_first_and_settling_gives_back(store: LimitStore) -> None:
    first = await store.reserve("k", LIMITS, wanted=100, prompt=5, now=NOON)
    await store.settle("k", first, used=20)  # it used 20 of its 100
    assert await minute_count(store) == 20
    second = await store.reserve("k", LIMITS, wanted=80, prompt=5, now=NOON)
    third = await store.reserve("k", LIMITS, wanted=80, prompt=60, now=NOON)  # day: 150 - 100 = 50 left < 61
    assert second.granted == 80
    assert (third.refused_by, third.left) == ("tokens_per_day", 50)
    assert third.retry_after == Windows.at(NOON).day_reset


async def test_a_settlement_after_its_window_ended_changes_nothing_new(store: LimitStore) -> None:
    reservation = await store.reserve("k", LIMITS, wanted=50, prompt=5, now=NOON - 3600)  # an hour ago
    await store.settle("k", reservation, used=10)
    assert await minute_count(store) == 0  # this minute's count is not touched by an old minute's settlement
