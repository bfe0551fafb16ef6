"""Admission control for local compute: a bounded wait queue, first come first served, with a queue timeout.

Waiters are served in arrival order, with one exception that saves model loads: when a slot frees, a waiter
for a model that is already loaded may go before waiters for models that are not, but no waiter is passed
over more than ``MAX_BYPASS`` times. Beyond ``max_queue`` waiters a request is refused at once
(QueueFullError, 503); one that waits longer than ``queue_timeout`` gets QueueTimeoutError (408). Both carry
a Retry-After estimate from how long slots have recently been held.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from lollms_server.core.errors import QueueFullError, QueueTimeoutError
from lollms_server.core.model_residency import ModelKey, ModelResidency

logger = logging.getLogger(__name__)

STRATEGIES = ("semaphore", "simple_lock", "none")
# Waits longer than this are logged, so queueing is visible without a metrics endpoint.
_LOGGED_WAIT_SECONDS = 0.05
# How many times a waiter may be overtaken by later waiters whose model is already loaded.
MAX_BYPASS = 4
# Weight of the newest hold time in the running average behind Retry-After.
_HOLD_AVERAGE_WEIGHT = 0.2
_MAX_RETRY_AFTER = 3600
_SHARED_POLL_SECONDS = 0.05  # how often a task waiting for a shared slot asks again


# The slot the current task already holds: nested acquisitions (a binding acquiring inside a request
# the pipeline admitted) must not wait for a second slot, which would deadlock at gpu_limit 1.
_held_slot: contextvars.ContextVar[ResourceSlot | None] = contextvars.ContextVar("lollms_held_slot", default=None)


class SharedSlots(Protocol):
    """Compute slots shared with other replicas (Redis): a lease per task, ``None`` when none is free."""

    async def try_acquire(self) -> str | None: ...

    async def release(self, lease: str) -> None: ...


class ResourceSlot:
    """One admitted task's hold on the resource; ``release`` is idempotent."""

    def __init__(self, manager: ResourceManager, holds_permit: bool, shared_lease: str | None = None) -> None:
        self._manager = manager
        self._holds_permit = holds_permit
        self._shared_lease = shared_lease
        self._since = time.monotonic()

    def release(self) -> None:
        if self._holds_permit:
            self._holds_permit = False
            self._manager._give_back(time.monotonic() - self._since)
        if self._shared_lease is not None:
            lease, self._shared_lease = self._shared_lease, None
            self._manager._release_shared(lease)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Mark the current context as holding this slot (see ``acquire_gpu_resource``)."""
        token = _held_slot.set(self)
        try:
            yield
        finally:
            _held_slot.reset(token)


@dataclass(eq=False)
class _Waiter:
    granted: asyncio.Future[None]
    model: ModelKey | None
    bypassed: int = 0


@dataclass(frozen=True)
class ResourceStats:
    strategy: str
    limit: int | None
    active: int
    waiting: int
    max_queue: int
    admitted_total: int
    timed_out_total: int
    rejected_total: int
    max_wait_seconds: float


class ResourceManager:
    """Limits how many tasks hold a compute slot at once (spec "Resource Management") and which models stay
    loaded (``models``)."""

    def __init__(
        self,
        gpu_strategy: str = "semaphore",
        gpu_limit: int = 1,
        queue_timeout: float = 120,
        max_queue: int = 100,
        max_loaded_models: int = 3,
    ) -> None:
        if gpu_strategy not in STRATEGIES:
            raise ValueError(f"gpu_strategy must be one of {STRATEGIES}, not {gpu_strategy!r}")
        if gpu_limit < 1:
            raise ValueError("gpu_limit must be at least 1")
        if max_queue < 0:
            raise ValueError("max_queue must be 0 or more")
        self.strategy = gpu_strategy
        self.limit: int | None = {"semaphore": gpu_limit, "simple_lock": 1, "none": None}[gpu_strategy]
        self.queue_timeout = float(queue_timeout)
        self.max_queue = max_queue
        self.models = ModelResidency(max_loaded_models)
        self._waiters: deque[_Waiter] = deque()
        self._active = 0
        self._admitted = 0
        self._timed_out = 0
        self._rejected = 0
        self._max_wait = 0.0
        self._average_hold: float | None = None
        # With replicas (shared_state.redis_url): the limit holds across all of them. A task takes its local
        # slot first (the local queue keeps its order and bounds), then a shared one, polling until it is free.
        self.shared: SharedSlots | None = None
        self.shared_unavailable: Callable[[Exception], bool] | None = None  # True: go on without (fail open)
        self._releases: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ResourceManager:
        return cls(
            section["gpu_strategy"],
            section["gpu_limit"],
            section["queue_timeout"],
            section.get("max_queue", 100),
            section.get("max_loaded_models", 3),
        )

    def retry_after(self) -> int:
        """Seconds after which a refused request may expect a free slot (whole seconds, at least 1)."""
        hold = self._average_hold if self._average_hold is not None else 1.0
        ahead = len(self._waiters) + 1
        return max(1, min(_MAX_RETRY_AFTER, math.ceil(hold * ahead / (self.limit or 1))))

    async def admit(
        self, task_name: str = "task", timeout: float | None = None, model: ModelKey | None = None
    ) -> ResourceSlot:
        """Wait for a slot; release it with ``slot.release()``. ``model`` (the model the task will use) lets a
        task whose model is already loaded go first (a bounded number of times)."""
        if self.limit is None:
            return ResourceSlot(self, holds_permit=False)
        if self._active < self.limit and not self._waiters:
            self._active += 1
            self._admitted += 1
            return await self._with_shared(ResourceSlot(self, holds_permit=True), task_name, timeout)
        if len(self._waiters) >= self.max_queue:
            self._rejected += 1
            logger.warning(
                "'%s' refused: %d request(s) already waiting for %d compute slot(s)",
                task_name,
                len(self._waiters),
                self.limit,
            )
            raise QueueFullError(
                f"the server is busy: {len(self._waiters)} requests are already waiting for a compute slot "
                f"(resource_manager.max_queue); retry later",
                retry_after=self.retry_after(),
            )
        limit = self.queue_timeout if timeout is None else timeout
        waiter = _Waiter(asyncio.get_running_loop().create_future(), model)
        self._waiters.append(waiter)
        started = time.monotonic()
        try:
            with anyio.fail_after(limit):
                await asyncio.shield(waiter.granted)
        except BaseException as exc:
            if waiter.granted.done() and not waiter.granted.cancelled():
                self._give_back(None)  # granted just as we gave up: pass the slot on
            else:
                waiter.granted.cancel()
                self._waiters.remove(waiter)
            if not isinstance(exc, TimeoutError):
                raise
            self._timed_out += 1
            logger.warning(
                "'%s' waited %.1fs for a compute slot and gave up (%d active, %d waiting, limit %s)",
                task_name,
                limit,
                self._active,
                len(self._waiters),
                self.limit,
            )
            raise QueueTimeoutError(
                f"no compute slot became free within {limit:g}s ({self.limit} in use); retry later",
                retry_after=self.retry_after(),
            ) from None
        waited = time.monotonic() - started
        self._max_wait = max(self._max_wait, waited)
        if waited > _LOGGED_WAIT_SECONDS:
            logger.info(
                "'%s' waited %.2fs for a compute slot (%d still waiting)", task_name, waited, len(self._waiters)
            )
        remaining = max(0.0, limit - waited)
        return await self._with_shared(ResourceSlot(self, holds_permit=True), task_name, remaining)

    async def _with_shared(self, slot: ResourceSlot, task_name: str, timeout: float | None) -> ResourceSlot:
        """The local slot plus a shared one when replicas share the limit (waiting up to ``timeout``)."""
        if self.shared is None:
            return slot
        deadline = time.monotonic() + (self.queue_timeout if timeout is None else timeout)
        try:
            while (lease := await self.shared.try_acquire()) is None:
                if time.monotonic() >= deadline:
                    self._timed_out += 1
                    raise QueueTimeoutError(
                        f"no compute slot became free on any replica within the queue timeout ({self.limit} shared)",
                        retry_after=self.retry_after(),
                    )
                await asyncio.sleep(_SHARED_POLL_SECONDS)
        except QueueTimeoutError:
            slot.release()
            raise
        except Exception as exc:
            if self.shared_unavailable is not None and self.shared_unavailable(exc):
                return slot  # fail open: this replica's own limit still holds
            slot.release()
            raise
        except BaseException:
            slot.release()
            raise
        slot._shared_lease = lease
        return slot

    def _release_shared(self, lease: str) -> None:
        if self.shared is None:
            return
        task = asyncio.get_running_loop().create_task(self._release_lease(self.shared, lease))
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _release_lease(self, shared: SharedSlots, lease: str) -> None:
        try:
            await shared.release(lease)
        except Exception as exc:  # the lease expires on its own (shared_state.lease_seconds)
            logger.warning("A shared compute slot could not be given back now: %s", exc)

    def _next_waiter(self) -> _Waiter:
        """The oldest waiter, unless a later one wants a loaded model and nobody before it was passed over
        too often."""
        head = self._waiters[0]
        if head.model is None or self.models.is_loaded(head.model):
            return head
        for index, waiter in enumerate(self._waiters):
            if waiter.model is not None and self.models.is_loaded(waiter.model):
                overtaken = [self._waiters[i] for i in range(index)]
                if all(other.bypassed < MAX_BYPASS for other in overtaken):
                    for other in overtaken:
                        other.bypassed += 1
                    return waiter
                break
        return head

    def _give_back(self, held_for: float | None) -> None:
        if held_for is not None:
            previous = self._average_hold
            self._average_hold = (
                held_for if previous is None else previous + _HOLD_AVERAGE_WEIGHT * (held_for - previous)
            )
        self._active -= 1
        while self.limit is not None and self._active < self.limit and self._waiters:
            waiter = self._next_waiter()
            self._waiters.remove(waiter)
            self._active += 1
            self._admitted += 1
            waiter.granted.set_result(None)

    @asynccontextmanager
    async def acquire_gpu_resource(
        self, task_name: str = "task", timeout: float | None = None, model: ModelKey | None = None
    ) -> AsyncIterator[None]:
        """Hold one slot for the body. Re-entrant: inside ``holding(slot)`` it takes no second slot."""
        if _held_slot.get() is not None:
            yield
            return
        slot = await self.admit(task_name, timeout, model)
        try:
            with slot.held():
                yield
        finally:
            slot.release()

    def stats(self) -> ResourceStats:
        return ResourceStats(
            strategy=self.strategy,
            limit=self.limit,
            active=self._active,
            waiting=len(self._waiters),
            max_queue=self.max_queue,
            admitted_total=self._admitted,
            timed_out_total=self._timed_out,
            rejected_total=self._rejected,
            max_wait_seconds=round(self._max_wait, 4),
        )
