"""Admission control for local compute: semaphore, simple lock or none, with a queue timeout."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from lollms_server.core.errors import QueueTimeoutError

logger = logging.getLogger(__name__)

STRATEGIES = ("semaphore", "simple_lock", "none")
# Waits longer than this are logged, so queueing is visible without a metrics endpoint.
_LOGGED_WAIT_SECONDS = 0.05


# The slot the current task already holds: nested acquisitions (a binding acquiring inside a request
# the pipeline admitted) must not wait for a second slot, which would deadlock at gpu_limit 1.
_held_slot: contextvars.ContextVar[ResourceSlot | None] = contextvars.ContextVar("lollms_held_slot", default=None)


class ResourceSlot:
    """One admitted task's hold on the resource; ``release`` is idempotent."""

    def __init__(self, manager: ResourceManager, holds_permit: bool) -> None:
        self._manager = manager
        self._holds_permit = holds_permit

    def release(self) -> None:
        if self._holds_permit:
            self._holds_permit = False
            self._manager._give_back()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Mark the current context as holding this slot (see ``acquire_gpu_resource``)."""
        token = _held_slot.set(self)
        try:
            yield
        finally:
            _held_slot.reset(token)


@dataclass(frozen=True)
class ResourceStats:
    strategy: str
    limit: int | None
    active: int
    waiting: int
    admitted_total: int
    timed_out_total: int
    max_wait_seconds: float


class ResourceManager:
    """Limits how many tasks hold a compute slot at once (spec "Resource Management")."""

    def __init__(self, gpu_strategy: str = "semaphore", gpu_limit: int = 1, queue_timeout: float = 120) -> None:
        if gpu_strategy not in STRATEGIES:
            raise ValueError(f"gpu_strategy must be one of {STRATEGIES}, not {gpu_strategy!r}")
        if gpu_limit < 1:
            raise ValueError("gpu_limit must be at least 1")
        self.strategy = gpu_strategy
        self.limit: int | None = {"semaphore": gpu_limit, "simple_lock": 1, "none": None}[gpu_strategy]
        self.queue_timeout = float(queue_timeout)
        self._semaphore = asyncio.Semaphore(self.limit) if self.limit is not None else None
        self._active = 0
        self._waiting = 0
        self._admitted = 0
        self._timed_out = 0
        self._max_wait = 0.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ResourceManager:
        return cls(section["gpu_strategy"], section["gpu_limit"], section["queue_timeout"])

    async def admit(self, task_name: str = "task", timeout: float | None = None) -> ResourceSlot:
        """Wait for a slot (QueueTimeoutError after the queue timeout); release it with ``slot.release()``."""
        if self._semaphore is None:
            return ResourceSlot(self, holds_permit=False)
        limit = self.queue_timeout if timeout is None else timeout
        started = time.monotonic()
        self._waiting += 1
        try:
            # A cancelled or timed-out acquire gives its permit back inside Semaphore.acquire itself.
            with anyio.fail_after(limit):
                await self._semaphore.acquire()
        except TimeoutError:
            self._timed_out += 1
            logger.warning(
                "'%s' waited %.1fs for a compute slot and gave up (%d active, %d waiting, limit %s)",
                task_name,
                limit,
                self._active,
                self._waiting - 1,
                self.limit,
            )
            raise QueueTimeoutError(
                f"no compute slot became free within {limit:g}s ({self.limit} in use); retry later"
            ) from None
        finally:
            self._waiting -= 1
        waited = time.monotonic() - started
        self._max_wait = max(self._max_wait, waited)
        if waited > _LOGGED_WAIT_SECONDS:
            logger.info("'%s' waited %.2fs for a compute slot (%d still waiting)", task_name, waited, self._waiting)
        self._active += 1
        self._admitted += 1
        return ResourceSlot(self, holds_permit=True)

    def _give_back(self) -> None:
        self._active -= 1
        if self._semaphore is not None:
            self._semaphore.release()

    @asynccontextmanager
    async def acquire_gpu_resource(self, task_name: str = "task", timeout: float | None = None) -> AsyncIterator[None]:
        """Hold one slot for the body. Re-entrant: inside ``holding(slot)`` it takes no second slot."""
        if _held_slot.get() is not None:
            yield
            return
        slot = await self.admit(task_name, timeout)
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
            waiting=self._waiting,
            admitted_total=self._admitted,
            timed_out_total=self._timed_out,
            max_wait_seconds=round(self._max_wait, 4),
        )
