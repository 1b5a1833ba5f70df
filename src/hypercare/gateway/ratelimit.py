"""Rate limiting with GCRA (the generic cell rate algorithm), locally or shared through Redis.

GCRA keeps one number per key, the theoretical arrival time (TAT). With `limit` requests per
`period`, each request advances the TAT by ``T = period / limit`` and is refused when that would
put the TAT more than `period` ahead of now: a burst of `limit` is allowed, then one request every
T. The same arithmetic runs in Redis as one Lua script (one round trip, atomic), so several
gateway nodes share one limit. When Redis fails, the local limiter answers and the fallback is
counted: a rate limiter must never block traffic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple


class Decision(NamedTuple):
    """One rate-limit verdict (a NamedTuple: it is built on every limited request)."""

    allowed: bool
    limit: int
    remaining: int
    reset: float  # seconds until the full quota is back
    retry_after: float  # seconds until the next request would be allowed (0 if allowed)

    def headers(self) -> bytes:
        """RateLimit-Limit/-Remaining/-Reset (and Retry-After when refused) header lines."""
        out = b"ratelimit-limit: %d\r\nratelimit-remaining: %d\r\nratelimit-reset: %d\r\n" % (
            self.limit,
            self.remaining,
            math.ceil(self.reset),
        )
        if not self.allowed:
            out += b"retry-after: %d\r\n" % max(1, math.ceil(self.retry_after))
        return out


def gcra(tat: float, now: float, limit: int, period: float) -> tuple[float, Decision]:
    """One GCRA step: (new TAT to store, decision). Pure; `tat` 0 means a fresh key."""
    interval = period / limit
    tat = max(tat, now)
    new_tat = tat + interval
    allow_at = new_tat - period
    if now < allow_at:
        remaining = 0
        return tat, Decision(False, limit, remaining, tat - now, allow_at - now)
    remaining = int((period - (new_tat - now)) / interval + 1e-9)
    return new_tat, Decision(True, limit, max(0, remaining), new_tat - now, 0.0)


class LocalLimiter:
    """GCRA state in this worker's memory; stale keys are swept so memory stays bounded."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._tat: dict[str, float] = {}
        self._clock = clock
        self._max_keys = max_keys

    def check(self, key: str, limit: int, period: float) -> Decision:
        now = self._clock()
        new_tat, decision = gcra(self._tat.get(key, 0.0), now, limit, period)
        self._tat[key] = new_tat
        if len(self._tat) > self._max_keys:
            self.sweep(now)
        return decision

    def sweep(self, now: float | None = None) -> None:
        """Forget keys whose TAT is in the past: they are back to a full quota anyway."""
        now = self._clock() if now is None else now
        for k in [k for k, t in self._tat.items() if t <= now]:
            del self._tat[k]
        if len(self._tat) > self._max_keys:  # under attack with many keys: fail open
            self._tat.clear()

    def __len__(self) -> int:
        return len(self._tat)


# KEYS[1] = key; ARGV = limit, period in microseconds. Time comes from the Redis server so that
# every gateway node agrees on "now". Returns {allowed, remaining, reset_us, retry_us}.
GCRA_LUA = """
local limit = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local interval = period / limit
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - period
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', ttl_ms)
local remaining = math.floor((period - (new_tat - now)) / interval + 0.000001)
return {1, remaining, new_tat - now, 0}
"""


class RedisLimiter:
    """GCRA in Redis, one EVALSHA per check; on any Redis error the local limiter decides.

    After a failure Redis is not tried again for `backoff` seconds, so an outage costs one
    timeout per backoff period instead of one per request.
    """

    def __init__(
        self,
        url: str,
        local: LocalLimiter,
        *,
        prefix: str = "hypercare:rl:",
        timeout: float = 0.1,
        backoff: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import redis.asyncio as aioredis

        self._redis: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry_on_timeout=False
        )
        self._script: Any = self._redis.register_script(GCRA_LUA)
        self._local = local
        self._prefix = prefix
        self._backoff = backoff
        self._clock = clock
        self._down_until = 0.0
        self.fallbacks = 0  # checks answered locally because Redis failed

    async def check(self, key: str, limit: int, period: float) -> Decision:
        if self._clock() < self._down_until:
            self.fallbacks += 1
            return self._local.check(key, limit, period)
        try:
            allowed, remaining, reset_us, retry_us = await self._script(
                keys=[self._prefix + key], args=[limit, int(period * 1_000_000)]
            )
        except Exception:  # any Redis or network failure: fail over, never block traffic
            self._down_until = self._clock() + self._backoff
            self.fallbacks += 1
            return self._local.check(key, limit, period)
        return Decision(bool(allowed), limit, int(remaining), reset_us / 1e6, retry_us / 1e6)

    async def close(self) -> None:
        await self._redis.aclose()
