"""The per-key limits and usage in Redis, shared by every replica: each admission is one Lua script (read the
counts, decide, count the request and take a concurrency lease, atomically), each completion one pipeline.

Concurrency leases are members of a sorted set scored by their expiry, so a replica that dies mid-request frees
its slots after ``lease_seconds``. Any connection problem is ``StoreUnavailableError``; redis-py reconnects on the
next call, so recovery needs no restart."""

from __future__ import annotations

import time
import uuid
from typing import Any

from lollms_server.core.api_keys import KeyLimits
from lollms_server.core.quotas import (
    UNLIMITED,
    Admission,
    Reservation,
    StoreUnavailableError,
    Windows,
    empty_usage,
    rate_headers,
)

# The same order of checks as quotas.decide(); -1 means no limit.
ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local requests = tonumber(redis.call('GET', KEYS[1]) or '0')
local minute_tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local day_tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
local concurrent = redis.call('ZCARD', KEYS[4])
local rpm, tpm, tpd, conc = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local refused = ''
if tpd >= 0 and day_tokens >= tpd then refused = 'tokens_per_day'
elseif tpm >= 0 and minute_tokens >= tpm then refused = 'tokens_per_minute'
elseif rpm >= 0 and requests >= rpm then refused = 'requests_per_minute'
elseif conc >= 0 and concurrent >= conc then refused = 'concurrent_requests' end
if refused == '' then
  redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], 120)
  redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[8]))
  redis.call('HINCRBY', KEYS[5], 'requests', 1)
  redis.call('SADD', KEYS[6], ARGV[9])
end
return {refused, requests, minute_tokens, day_tokens, concurrent}
"""

# quotas.grant() in Lua: the tokens granted (wanted, cut to what the limits leave) or the limit that refuses, and
# the count of what is granted, atomically. KEYS: the minute's and the day's token counts; -1 means no limit.
RESERVE = """
local minute_tokens = tonumber(redis.call('GET', KEYS[1]) or '0')
local day_tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local tpm, tpd, wanted, least = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local granted = wanted
if tpd >= 0 then
  if tpd - day_tokens < least then return {'tokens_per_day', math.max(0, tpd - day_tokens)} end
  granted = math.min(granted, tpd - day_tokens)
end
if tpm >= 0 then
  if tpm - minute_tokens < least then return {'tokens_per_minute', math.max(0, tpm - minute_tokens)} end
  granted = math.min(granted, tpm - minute_tokens)
end
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], 120)
redis.call('INCRBY', KEYS[2], granted)
redis.call('EXPIRE', KEYS[2], 172800)
return {'', granted}
"""
# A settlement: the difference counted in the reservation's windows that still exist (INCRBY keeps their expiry).
SETTLE = """
for _, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[1]) end
end
"""


def _limit(value: int | None) -> int:
    return -1 if value is None else value


class RedisLimitStore:
    counts_locally = False  # every count is a round trip: admit() does it

    def __init__(self, url: str, prefix: str = "lollms:", lease_seconds: int = 900, timeout: float = 2.0) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.prefix = prefix
        self.lease_seconds = lease_seconds
        self._admit = self.client.register_script(ADMIT)
        self._reserve = self.client.register_script(RESERVE)
        self._settle = self.client.register_script(SETTLE)

    def _keys(self, name: str, windows: Windows) -> list[str]:
        p = self.prefix
        return [
            f"{p}req:{name}:{windows.minute}",
            f"{p}tpm:{name}:{windows.minute}",
            f"{p}tpd:{name}:{windows.day}",
            f"{p}conc:{name}",
            f"{p}usage:{name}",
            f"{p}names",
        ]

    async def _call(self, awaitable: Any) -> Any:
        from redis.exceptions import ConnectionError, TimeoutError

        try:
            return await awaitable
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise StoreUnavailableError(f"Redis is unreachable: {exc}") from exc

    async def admit(self, name: str, limits: KeyLimits, now: float | None = None) -> Admission:
        if not limits.any:  # nothing to enforce: one pipeline counts the request, no lease
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(f"{self.prefix}usage:{name}", "requests", 1)
            pipe.sadd(f"{self.prefix}names", name)
            await self._call(pipe.execute())
            return UNLIMITED
        now = time.time() if now is None else now
        windows = Windows.at(now)
        lease = uuid.uuid4().hex
        arguments: list[str | int | float] = [
            now,
            now + self.lease_seconds,
            lease,
            _limit(limits.requests_per_minute),
            _limit(limits.tokens_per_minute),
            _limit(limits.tokens_per_day),
            _limit(limits.concurrent_requests),
            self.lease_seconds,
            name,
        ]
        refused, requests, minute_tokens, _, _ = await self._call(self._admit(self._keys(name, windows), arguments))
        refused = refused.decode() if isinstance(refused, bytes) else refused
        headers = rate_headers(limits, windows, int(requests) + (not refused), int(minute_tokens))
        if refused:
            retry = {"tokens_per_day": windows.day_reset, "concurrent_requests": 1}.get(refused, windows.minute_reset)
            return Admission(False, refused_by=refused, retry_after=retry, headers=headers)
        return Admission(True, lease=lease, headers=headers)

    def count_request(self, name: str) -> None:
        raise NotImplementedError("counted by admit(), in Redis")

    async def release(self, name: str, lease: str) -> None:
        await self._call(self.client.zrem(f"{self.prefix}conc:{name}", lease))

    async def reserve(
        self, name: str, limits: KeyLimits, wanted: int, prompt: int, now: float | None = None
    ) -> Reservation:
        windows = Windows.at(time.time() if now is None else now)
        keys = self._keys(name, windows)[1:3]
        arguments = [_limit(limits.tokens_per_minute), _limit(limits.tokens_per_day), wanted, prompt + 1]
        refused, amount = await self._call(self._reserve(keys, arguments))
        refused = refused.decode() if isinstance(refused, bytes) else refused
        if refused:
            retry = windows.day_reset if refused == "tokens_per_day" else windows.minute_reset
            return Reservation(0, prompt, windows.minute, windows.day, refused, int(amount), retry)
        return Reservation(int(amount), prompt, windows.minute, windows.day)

    async def settle(self, name: str, reservation: Reservation, used: int) -> None:
        """Count ``used`` instead of the reservation, in the windows it was made in (expired ones stay gone)."""
        change = used - reservation.granted
        if not change:
            return
        keys = [f"{self.prefix}tpm:{name}:{reservation.minute}", f"{self.prefix}tpd:{name}:{reservation.day}"]
        await self._call(self._settle(keys, [change]))

    async def record(
        self, name: str, model: str, prompt_tokens: int, completion_tokens: int, error: bool, windows: bool = True
    ) -> None:
        keys = self._keys(name, Windows.at(time.time()))
        tokens = prompt_tokens + completion_tokens
        pipe = self.client.pipeline(transaction=False)
        if tokens and windows:
            pipe.incrby(keys[1], tokens)
            pipe.expire(keys[1], 120)
            pipe.incrby(keys[2], tokens)
            pipe.expire(keys[2], 2 * 86400)
        if error:
            pipe.hincrby(keys[4], "errors", 1)
        if prompt_tokens:
            pipe.hincrby(keys[4], f"prompt_tokens:{model}", prompt_tokens)
        if completion_tokens:
            pipe.hincrby(keys[4], f"completion_tokens:{model}", completion_tokens)
        pipe.sadd(keys[5], name)
        await self._call(pipe.execute())

    async def usage(self) -> dict[str, dict[str, Any]]:
        names = sorted(item.decode() for item in await self._call(self.client.smembers(f"{self.prefix}names")))
        now = time.time()
        result = {}
        for name in names:
            raw = await self._call(self.client.hgetall(f"{self.prefix}usage:{name}"))
            usage = empty_usage()
            for field_name, value in ((key.decode(), int(value)) for key, value in raw.items()):
                kind, _, model = field_name.partition(":")
                if model:
                    usage[kind][model] = value
                else:
                    usage[kind] = value
            usage["active"] = int(await self._call(self.client.zcount(f"{self.prefix}conc:{name}", now, "+inf")))
            result[name] = usage
        return result

    async def close(self) -> None:
        await self.client.aclose()


# A semaphore across replicas: leases in a sorted set scored by their expiry.
ACQUIRE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]))
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[4]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  return 1
end
return 0
"""


class RedisSlots:
    """The compute slots of ``resource_manager`` shared by every replica (``ResourceManager.shared``)."""

    def __init__(self, store: RedisLimitStore, limit: int) -> None:
        self.store = store
        self.key = f"{store.prefix}compute_slots"
        self.limit = limit
        self._acquire = store.client.register_script(ACQUIRE_SLOT)

    async def try_acquire(self) -> str | None:
        now, lease = time.time(), uuid.uuid4().hex
        arguments: list[str | int | float] = [
            now,
            now + self.store.lease_seconds,
            lease,
            self.limit,
            self.store.lease_seconds,
        ]
        granted = await self.store._call(self._acquire([self.key], arguments))
        return lease if granted else None

    async def release(self, lease: str) -> None:
        await self.store._call(self.store.client.zrem(self.key, lease))
