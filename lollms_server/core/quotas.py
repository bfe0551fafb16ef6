"""Per-key limits and usage: requests per minute, tokens per minute and per day, concurrent requests.

Windows are fixed (the UTC minute, the UTC day) so counts are exact and the same on every replica. A request is
counted when it is admitted (a replica that dies mid-stream loses no count). A generation under a token limit
reserves its most tokens (its prompt and ``max_tokens``, cut to what the key has left) before it runs
(``TokenBudget``), so simultaneous requests cannot overshoot the limit; when it ends the count is settled to what
it used; one that does not finish (its client left, it failed) stays counted at its reservation. Two stores
keep the counts with the same semantics: ``MemoryLimitStore`` for one process, ``RedisLimitStore``
(``redis_state.py``) shared by every replica."""

from __future__ import annotations

import itertools
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from lollms_server.core.api_keys import KeyLimits, Principal
from lollms_server.core.errors import RateLimitedError, UnavailableError

logger = logging.getLogger(__name__)


class StoreUnavailableError(UnavailableError):
    """The shared store (Redis) cannot be reached."""


@dataclass(frozen=True)
class Admission:
    allowed: bool
    lease: str | None = None
    refused_by: str | None = None  # the limit that refused it
    retry_after: int = 0
    headers: dict[str, str] = field(default_factory=dict)


UNLIMITED = Admission(True)  # a key without limits: admitted, no lease to give back


@dataclass(frozen=True)
class Windows:
    """The current minute and day, and the seconds until each ends."""

    minute: int
    day: int
    minute_reset: int
    day_reset: int

    @classmethod
    def at(cls, now: float) -> Windows:
        second = int(now)
        return cls(second // 60, second // 86400, 60 - second % 60, 86400 - second % 86400)


def decide(
    limits: KeyLimits,
    windows: Windows,
    requests: int,
    minute_tokens: int,
    day_tokens: int,
    concurrent: int,
) -> tuple[str | None, int]:
    """Which limit refuses a new request given the counts before it (None: admitted), and when to retry."""
    if limits.tokens_per_day is not None and day_tokens >= limits.tokens_per_day:
        return "tokens_per_day", windows.day_reset
    if limits.tokens_per_minute is not None and minute_tokens >= limits.tokens_per_minute:
        return "tokens_per_minute", windows.minute_reset
    if limits.requests_per_minute is not None and requests >= limits.requests_per_minute:
        return "requests_per_minute", windows.minute_reset
    if limits.concurrent_requests is not None and concurrent >= limits.concurrent_requests:
        return "concurrent_requests", 1
    return None, 0


@dataclass(frozen=True)
class Reservation:
    """Tokens counted for a generation before it runs: ``granted`` in all (``prompt`` of them its prompt), in the
    windows of ``minute`` and ``day``; or the limit that refused it."""

    granted: int
    prompt: int
    minute: int
    day: int
    refused_by: str | None = None
    left: int = 0  # what the key had left (reported when refused)
    retry_after: int = 0

    def used(self, finished: bool, used_tokens: int) -> int:
        """The tokens to count in the end: what a finished generation used, else the whole reservation (what an
        abandoned or failed generation computed is not known)."""
        return used_tokens if finished else self.granted


def grant(
    limits: KeyLimits, windows: Windows, wanted: int, least: int, minute_tokens: int, day_tokens: int
) -> tuple[int, str | None, int]:
    """(tokens granted, the limit that refused, tokens left): ``wanted`` cut to what the token limits leave, or
    refused when that is less than ``least``. The Lua script ``redis_state.RESERVE`` decides the same way."""
    granted = wanted
    for refused_by, limit, used in (
        ("tokens_per_day", limits.tokens_per_day, day_tokens),
        ("tokens_per_minute", limits.tokens_per_minute, minute_tokens),
    ):
        if limit is None:
            continue
        if limit - used < least:
            return 0, refused_by, max(0, limit - used)
        granted = min(granted, limit - used)
    return granted, None, granted


def rate_headers(limits: KeyLimits, windows: Windows, requests: int, minute_tokens: int) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits a key has (counts include the request being answered)."""
    headers = {}
    if limits.requests_per_minute is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.requests_per_minute)
        headers["x-ratelimit-remaining-requests"] = str(max(0, limits.requests_per_minute - requests))
        headers["x-ratelimit-reset-requests"] = f"{windows.minute_reset}s"
    if limits.tokens_per_minute is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tokens_per_minute)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, limits.tokens_per_minute - minute_tokens))
        headers["x-ratelimit-reset-tokens"] = f"{windows.minute_reset}s"
    return headers


class LimitStore(Protocol):
    counts_locally: bool  # True: ``count_request`` counts a request without I/O

    def count_request(self, name: str) -> None: ...

    async def admit(self, name: str, limits: KeyLimits, now: float | None = None) -> Admission: ...

    async def release(self, name: str, lease: str) -> None: ...

    async def record(
        self, name: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool, windows: bool = True
    ) -> None:
        """Count a generation's tokens in the key's usage, and in its windows too unless a reservation did."""

    async def reserve(
        self, name: str, limits: KeyLimits, wanted: int, prompt: int, now: float | None = None
    ) -> Reservation: ...

    async def settle(self, name: str, reservation: Reservation, used: int) -> None: ...

    async def usage(self) -> dict[str, dict[str, Any]]: ...

    async def close(self) -> None: ...


def empty_usage() -> dict[str, Any]:
    return {"requests": 0, "errors": 0, "prompt_tokens": {}, "completion_tokens": {}}


class MemoryLimitStore:
    """The counts of one process (no awaits inside a decision: each is atomic on the event loop)."""

    counts_locally = True

    def __init__(self, lease_seconds: float = 900.0) -> None:
        self.lease_seconds = lease_seconds
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.minute_tokens: dict[tuple[str, int], int] = defaultdict(int)
        self.day_tokens: dict[tuple[str, int], int] = defaultdict(int)
        self.leases: dict[str, dict[str, float]] = defaultdict(dict)
        self.totals: dict[str, dict[str, Any]] = defaultdict(empty_usage)
        self._lease_numbers = itertools.count()

    def _forget_old(self, windows: Windows) -> None:
        for table, current in ((self.requests, windows.minute), (self.minute_tokens, windows.minute)):
            for key in [key for key in table if key[1] < current]:
                del table[key]
        for key in [key for key in self.day_tokens if key[1] < windows.day]:
            del self.day_tokens[key]

    def count_request(self, name: str) -> None:
        self.totals[name]["requests"] += 1

    async def admit(self, name: str, limits: KeyLimits, now: float | None = None) -> Admission:
        if not limits.any:  # nothing to enforce: count the request, hold no lease
            self.count_request(name)
            return UNLIMITED
        now = time.time() if now is None else now
        windows = Windows.at(now)
        if len(self.requests) > 4096:
            self._forget_old(windows)
        leases = self.leases[name]
        for lease, expiry in list(leases.items()):
            if expiry <= now:
                del leases[lease]
        requests = self.requests[(name, windows.minute)]
        minute_tokens = self.minute_tokens[(name, windows.minute)]
        refused, retry = decide(
            limits, windows, requests, minute_tokens, self.day_tokens[(name, windows.day)], len(leases)
        )
        headers = rate_headers(limits, windows, requests + (refused is None), minute_tokens)
        if refused is not None:
            return Admission(False, refused_by=refused, retry_after=retry, headers=headers)
        self.requests[(name, windows.minute)] = requests + 1
        self.totals[name]["requests"] += 1
        lease = str(next(self._lease_numbers))  # unique in this process, which is all a memory lease needs
        leases[lease] = now + self.lease_seconds
        return Admission(True, lease=lease, headers=headers)

    async def release(self, name: str, lease: str) -> None:
        self.leases[name].pop(lease, None)

    async def record(
        self, name: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool, windows: bool = True
    ) -> None:
        self.record_now(name, model, prompt_tokens, completion_tokens, error, windows)

    async def reserve(
        self, name: str, limits: KeyLimits, wanted: int, prompt: int, now: float | None = None
    ) -> Reservation:
        windows = Windows.at(time.time() if now is None else now)
        minute, day = (name, windows.minute), (name, windows.day)
        granted, refused_by, left = grant(
            limits, windows, wanted, prompt + 1, self.minute_tokens[minute], self.day_tokens[day]
        )
        if refused_by is not None:
            retry = windows.day_reset if refused_by == "tokens_per_day" else windows.minute_reset
            return Reservation(0, prompt, windows.minute, windows.day, refused_by, left, retry)
        self.minute_tokens[minute] += granted
        self.day_tokens[day] += granted
        return Reservation(granted, prompt, windows.minute, windows.day)

    async def settle(self, name: str, reservation: Reservation, used: int) -> None:
        self.settle_now(name, reservation, used)

    def settle_now(self, name: str, reservation: Reservation, used: int) -> None:
        """Count ``used`` instead of the reservation, in the windows it was made in (forgotten ones stay so)."""
        for table, window in ((self.minute_tokens, reservation.minute), (self.day_tokens, reservation.day)):
            if (name, window) in table:
                table[(name, window)] += used - reservation.granted

    def record_now(
        self, name: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool, windows: bool = True
    ) -> None:
        """Count a generation's tokens; ``windows``: also in the per-minute and per-day counts (only keys with
        token limits need them)."""
        tokens = prompt_tokens + completion_tokens
        if tokens and windows:
            second = int(time.time())
            self.minute_tokens[(name, second // 60)] += tokens
            self.day_tokens[(name, second // 86400)] += tokens
        usage = self.totals[name]
        usage["errors"] += int(error)
        for kind, count in (("prompt_tokens", prompt_tokens), ("completion_tokens", completion_tokens)):
            if count:
                usage[kind][model] = usage[kind].get(model, 0) + count

    async def usage(self) -> dict[str, dict[str, Any]]:
        return {name: {**usage, "active": len(self.leases.get(name, {}))} for name, usage in self.totals.items()}

    async def close(self) -> None:
        return None


class StoreHealth:
    """Whether the shared store answered last time: one log line per outage and per recovery."""

    def __init__(self, on_error: Callable[[], None] | None = None) -> None:
        self.down = False
        self.on_error = on_error

    def failed(self, exc: Exception) -> None:
        if self.on_error is not None:
            self.on_error()
        if not self.down:
            logger.error("Shared state store unreachable: %s; per-key limits follow shared_state.failure_policy", exc)
        self.down = True

    def answered(self) -> None:
        if self.down:
            logger.warning("Shared state store reachable again; per-key limits apply")
        self.down = False


class UsageAccounting:
    """The generation observer that adds each generation's tokens (and failures) to its key's counts."""

    def __init__(self, store: LimitStore, health: StoreHealth) -> None:
        self.store = store
        self.health = health
        self.memory = store if isinstance(store, MemoryLimitStore) else None

    def observe(self, record: Any) -> Awaitable[None] | None:
        if record.principal is None:
            return None
        reservation: Reservation | None = record.reservation
        arguments = (
            record.principal.name, record.model_id, record.prompt_tokens, record.completion_tokens,
            record.error is not None,
        )  # fmt: skip
        if self.memory is not None:  # no I/O: counted now, no coroutine to create and await
            # A reserved generation's windows are settled from its reservation, not counted again.
            self.memory.record_now(*arguments, windows=record.principal.limits.any and reservation is None)
            if reservation is not None:
                self.memory.settle_now(record.principal.name, reservation, self._used(record, reservation))
            return None
        return self._record(arguments, reservation, self._used(record, reservation) if reservation else 0)

    @staticmethod
    def _used(record: Any, reservation: Reservation) -> int:
        return reservation.used(record.finished, record.prompt_tokens + record.completion_tokens)

    async def _record(
        self, arguments: tuple[str, str, int, int, bool], reservation: Reservation | None, used: int
    ) -> None:
        try:
            await self.store.record(*arguments, windows=reservation is None)
            if reservation is not None:
                await self.store.settle(arguments[0], reservation, used)
            self.health.answered()
        except StoreUnavailableError as exc:
            self.health.failed(exc)


class TokenBudget:
    """Reserves the most tokens a generation may use before it runs, against its key's token limits: cut to what
    the key has left (the generation's ``max_tokens`` is lowered to fit), or refused with 429 when not even its
    prompt and one token fit. Keys without token limits reserve nothing."""

    def __init__(self, store: Callable[[], LimitStore | None], health: StoreHealth, fail_open: bool) -> None:
        self.store = store
        self.health = health
        self.fail_open = fail_open

    async def reserve(self, principal: Principal | None, prompt: int, max_tokens: int) -> Reservation | None:
        store = self.store()
        if principal is None or store is None:
            return None
        limits = principal.limits
        if limits.tokens_per_minute is None and limits.tokens_per_day is None:
            return None
        try:
            reservation = await store.reserve(principal.name, limits, prompt + max_tokens, prompt)
            self.health.answered()
        except StoreUnavailableError as exc:
            self.health.failed(exc)
            if self.fail_open:
                return None
            raise UnavailableError("the shared limits store is unreachable; retry shortly") from exc
        if reservation.refused_by is not None:
            limit = getattr(limits, reservation.refused_by)
            words = reservation.refused_by.replace("_", " ")
            raise RateLimitedError(
                f"rate limit reached for key '{principal.name}': {reservation.left} of its {limit} {words} left, "
                f"and this request's prompt alone is {prompt} tokens; retry in {reservation.retry_after} s",
                retry_after=reservation.retry_after,
            )
        return reservation

    async def cancel(self, principal: Principal | None, reservation: Reservation) -> None:
        """Give a reservation back whole: its generation never ran (refused in the compute queue)."""
        store = self.store()
        if principal is None or store is None:
            return
        try:
            await store.settle(principal.name, reservation, 0)
        except StoreUnavailableError as exc:
            self.health.failed(exc)
