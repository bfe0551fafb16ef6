"""Model residency: bounded per instance and in total, least recently used unloaded first, never a model in
use, idle models unloaded after keep_alive."""

from __future__ import annotations

import asyncio

from lollms_server.core.model_residency import ModelKey, ModelResidency
from tests.helpers import wait_until


class Models:
    """Fake loaded models that record their unloading."""

    def __init__(self, residency: ModelResidency) -> None:
        self.residency = residency
        self.unloaded: list[ModelKey] = []

    async def load(self, key: ModelKey, owner_limit: int = 10, keep_alive: float | None = None) -> None:
        async with self.residency.loading(key[0], owner_limit):

            async def unload() -> None:
                self.unloaded.append(key)

            self.residency.add(key, unload, keep_alive)
        await self.residency.leave(key)  # loaded, then idle


async def test_least_recently_used_goes_first_within_the_server_limit() -> None:
    models = Models(ModelResidency(max_loaded=2))
    await models.load(("a", "1"))
    await models.load(("b", "2"))
    models.residency.enter(("a", "1"))  # a/1 used again: b/2 is now the least recently used
    await models.residency.leave(("a", "1"))
    await models.load(("c", "3"))
    assert models.unloaded == [("b", "2")]
    assert set(models.residency.loaded_keys()) == {("a", "1"), ("c", "3")}


async def test_an_instance_at_its_own_limit_unloads_its_own_model() -> None:
    models = Models(ModelResidency(max_loaded=10))
    await models.load(("other", "x"))
    await models.load(("llama", "1"), owner_limit=1)
    await models.load(("llama", "2"), owner_limit=1)
    assert models.unloaded == [("llama", "1")]
    assert models.residency.is_loaded(("other", "x"))


async def test_a_model_in_use_is_never_unloaded_the_loader_waits() -> None:
    models = Models(ModelResidency(max_loaded=1))
    await models.load(("a", "1"))
    models.residency.enter(("a", "1"))
    second = asyncio.create_task(models.load(("b", "2")))
    await wait_until(lambda: len(models.residency._released._waiters) == 1)  # the loader waits for room
    assert not second.done() and models.unloaded == []
    await models.residency.leave(("a", "1"))
    await second
    assert models.unloaded == [("a", "1")] and models.residency.loaded_keys() == [("b", "2")]


async def test_idle_models_are_unloaded_after_keep_alive() -> None:
    models = Models(ModelResidency(max_loaded=3))
    await models.load(("a", "quick"), keep_alive=0.05)
    await models.load(("a", "forever"), keep_alive=None)
    await wait_until(lambda: models.unloaded == [("a", "quick")])
    await models.residency.drain()
    assert models.residency.loaded_keys() == [("a", "forever")]
    stats = models.residency.stats()
    assert (stats.loaded, stats.loads_total, stats.unloads_total) == (1, 2, 1)


async def test_use_cancels_a_pending_expiry() -> None:
    models = Models(ModelResidency(max_loaded=3))
    await models.load(("a", "1"), keep_alive=0.05)
    models.residency.enter(("a", "1"))  # in use before the timer fires: it must not unload
    assert models.residency._models[("a", "1")].expiry is None  # the timer is cancelled, not merely outrun
    # keep_alive passes (on the loop's clock: the timer, had it stayed, would have fired before this wakes).
    await asyncio.sleep(0.1)
    assert models.residency.is_loaded(("a", "1"))
    await models.residency.leave(("a", "1"))
    await wait_until(lambda: not models.residency.is_loaded(("a", "1")))
