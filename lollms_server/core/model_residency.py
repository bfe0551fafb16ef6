"""Which models are loaded, server-wide: bounded per instance and in total, least recently used unloaded
first, idle models unloaded after their ``keep_alive``.

A binding that loads models registers each loaded copy here under a canonical key (never under the name a
request spelled), marks it in use while it works with it, and gives an ``unload`` callback that frees its
memory. Nothing is unloaded while in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

ModelKey = tuple[str, Hashable]  # (owning binding instance, the model's canonical identity)


@dataclass(eq=False)
class ResidentModel:
    key: ModelKey
    unload: Callable[[], Awaitable[None]]
    keep_alive: float | None  # seconds idle before unloading; None = until evicted
    last_used: float = field(default_factory=time.monotonic)
    users: int = 0
    expiry: asyncio.TimerHandle | None = None
    name: str = ""  # what listings show (never a path)
    size: int = 0  # bytes of the model's files, when the binding knows them
    last_used_at: float = field(default_factory=time.time)  # wall clock, for expiry times shown to clients

    @property
    def owner(self) -> str:
        return self.key[0]


@dataclass(frozen=True)
class ResidencyStats:
    loaded: int
    max_loaded: int
    loads_total: int
    unloads_total: int
    models: list[dict[str, object]]


class ModelResidency:
    """The loaded models of every binding instance, within ``max_loaded`` for the whole server."""

    def __init__(self, max_loaded: int = 3) -> None:
        if max_loaded < 1:
            raise ValueError("max_loaded_models must be at least 1")
        self.max_loaded = max_loaded
        self._models: dict[ModelKey, ResidentModel] = {}
        self._released = asyncio.Condition()
        self._pending: dict[str, int] = {}  # loads under way, per owner: they count as loaded
        self._unloading: set[asyncio.Task[None]] = set()
        self._loads = 0
        self._unloads = 0

    def is_loaded(self, key: ModelKey) -> bool:
        return key in self._models

    def loaded_keys(self, owner: str | None = None) -> list[ModelKey]:
        return [key for key, entry in self._models.items() if owner is None or entry.owner == owner]

    def _count(self, owner: str | None = None) -> int:
        pending = self._pending.get(owner, 0) if owner is not None else sum(self._pending.values())
        return pending + sum(1 for entry in self._models.values() if owner is None or entry.owner == owner)

    @contextlib.asynccontextmanager
    async def loading(self, owner: str, owner_limit: int) -> AsyncIterator[None]:
        """Room for one more model of ``owner`` while the body loads it (and ``add``s it): idle models are
        unloaded, least recently used first, and while every model that would have to go is in use, this waits."""
        async with self._released:
            while self._count(owner) >= owner_limit or self._count() >= self.max_loaded:
                own_full = self._count(owner) >= owner_limit
                idle = [e for e in self._models.values() if e.users == 0 and (e.owner == owner or not own_full)]
                if idle:
                    await self._evict(min(idle, key=lambda entry: entry.last_used), "to make room")
                else:
                    await self._released.wait()
            self._pending[owner] = self._pending.get(owner, 0) + 1
        try:
            yield
        finally:
            self._pending[owner] -= 1
            async with self._released:
                self._released.notify_all()

    def add(
        self,
        key: ModelKey,
        unload: Callable[[], Awaitable[None]],
        keep_alive: float | None,
        name: str = "",
        size: int = 0,
    ) -> None:
        """Register a model just loaded (inside ``loading``); it starts in use by its loader, who ``leave``s it.
        ``name`` is what listings show."""
        self._models[key] = ResidentModel(key, unload, keep_alive, users=1, name=name, size=size)
        self._loads += 1

    def enter(self, key: ModelKey) -> None:
        """Mark a loaded model in use (it cannot be unloaded until ``leave``)."""
        entry = self._models[key]
        entry.users += 1
        if entry.expiry is not None:
            entry.expiry.cancel()
            entry.expiry = None

    async def leave(self, key: ModelKey) -> None:
        entry = self._models.get(key)
        if entry is None:
            return
        entry.users -= 1
        entry.last_used, entry.last_used_at = time.monotonic(), time.time()
        if entry.users == 0:
            if entry.keep_alive is not None:
                self._schedule_expiry(entry)
            async with self._released:
                self._released.notify_all()

    def _schedule_expiry(self, entry: ResidentModel) -> None:
        delay = max(float(entry.keep_alive or 0), 0.0)
        loop = asyncio.get_running_loop()
        entry.expiry = loop.call_later(delay, self._expire, entry)

    def _expire(self, entry: ResidentModel) -> None:
        entry.expiry = None
        if self._models.get(entry.key) is not entry or entry.users:
            return
        task = asyncio.get_running_loop().create_task(self._evict(entry, f"idle for {entry.keep_alive:g}s"))
        self._unloading.add(task)
        task.add_done_callback(self._unloading.discard)

    async def _evict(self, entry: ResidentModel, why: str) -> None:
        if self._models.get(entry.key) is not entry:
            return
        del self._models[entry.key]  # from now on nobody finds it: a request loads a fresh copy
        if entry.expiry is not None:
            entry.expiry.cancel()
        self._unloads += 1
        logger.info("Unloading %s of '%s' (%s)", entry.key[1], entry.owner, why)
        try:
            await entry.unload()
        except Exception:  # a binding failing to free its memory must not stop the others
            logger.exception("Unloading %s of '%s' failed", entry.key[1], entry.owner)

    async def unload(self, owner: str | None = None) -> None:
        """Unload every idle model of ``owner`` (every owner when None); models in use stay."""
        for entry in [entry for entry in self._models.values() if owner is None or entry.owner == owner]:
            if entry.users == 0:
                await self._evict(entry, "unload requested")

    async def drain(self) -> None:
        """Wait for unloads started by keep_alive timers (shutdown)."""
        if self._unloading:
            await asyncio.gather(*self._unloading, return_exceptions=True)

    def stats(self) -> ResidencyStats:
        now = time.monotonic()
        return ResidencyStats(
            loaded=len(self._models),
            max_loaded=self.max_loaded,
            loads_total=self._loads,
            unloads_total=self._unloads,
            models=[
                {
                    "instance": entry.owner,
                    "model": entry.name,
                    "size": entry.size,
                    "in_use": entry.users,
                    "idle_seconds": 0.0 if entry.users else round(now - entry.last_used, 3),
                    # None: in use, or kept until evicted
                    "expires_at": (
                        entry.last_used_at + entry.keep_alive
                        if entry.keep_alive is not None and not entry.users
                        else None
                    ),
                }
                for entry in self._models.values()
            ],
        )
