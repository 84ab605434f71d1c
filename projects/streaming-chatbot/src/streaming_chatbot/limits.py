"""Per-client rate limits: a token bucket per API key (or client address).

In memory the limit holds per replica; with Redis (`APP_REDIS_URL`) one bucket per
client is shared by every replica, updated atomically by a Lua script on Redis's clock.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from http import HTTPStatus
from typing import Protocol

from fastapi import Request
from fastapi.responses import JSONResponse
from redis.asyncio import Redis

from streaming_chatbot.errors import ServiceError, error_response
from streaming_chatbot.observability import Metrics
from streaming_chatbot.settings import Settings


class RateLimited(ServiceError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "rate_limited"


class RateLimiter(Protocol):
    async def wait_time(self, key: str) -> float:
        """Takes one token for `key`: 0 when allowed, else seconds until one is free."""
        ...


class MemoryTokenBucket:
    def __init__(self, rate: float, burst: int, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def wait_time(self, key: str) -> float:
        now = time.monotonic()
        tokens, updated = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)  # the least recently seen client
        return wait


_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisTokenBucket:
    def __init__(self, redis: Redis, rate: float, burst: int, prefix: str) -> None:
        self.rate = rate
        self.burst = burst
        self._prefix = prefix
        self._script = redis.register_script(_BUCKET_SCRIPT)

    async def wait_time(self, key: str) -> float:
        keys = [f"{self._prefix}:ratelimit:{key}"]
        wait = await self._script(keys=keys, args=[self.rate, self.burst])
        return float(wait)


class ClientRateLimit:
    """The configured limit (none when `APP_RATE_LIMIT_RPS=0`), checked per client."""

    def __init__(self, settings: Settings, metrics: Metrics, redis: Redis | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.limiter: RateLimiter | None = None
        if settings.rate_limit_rps <= 0:
            return
        if redis is not None:
            self.limiter = RedisTokenBucket(
                redis, settings.rate_limit_rps, settings.rate_limit_burst, settings.redis_prefix
            )
        else:
            self.limiter = MemoryTokenBucket(settings.rate_limit_rps, settings.rate_limit_burst)

    async def check(self, request: Request) -> None:
        """Raises RateLimited (429 with Retry-After) when the caller is over its limit."""
        if self.limiter is None:
            return
        wait = await self.limiter.wait_time(client_key(request))
        if wait > 0:
            self.metrics.llm_rejected.labels(reason="rate_limited").inc()
            raise RateLimited(
                f"rate limit of {self.settings.rate_limit_rps:g} requests/s exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )


def client_key(request: Request) -> str:
    """Whom a rate limit applies to: the API key the auth check accepted (`client_id`), else
    the client's address. A key nobody checked is the client's say-so: keyed on it, every
    request could bring a fresh bucket."""
    client_id = getattr(request.state, "client_id", None)
    if client_id:
        return str(client_id)
    return "addr:" + (request.client.host if request.client else "unknown")


async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The handler for RedisError: Redis holds shared state, so 503 and retry."""
    return error_response(
        request,
        503,
        "store_unavailable",
        f"the shared store (Redis) is unavailable: {exc}",
        headers={"Retry-After": "1"},
    )
