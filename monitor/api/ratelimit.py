"""Per-API-key rate limits (GCRA), shared through Redis by every collector process, or in-process.

GCRA (the generic cell rate algorithm) keeps one number per key: the theoretical arrival time (TAT) of the
next unit. A request costing `n` units at time `now` is allowed when `max(TAT, now) + n*T - burst*T <= now`
(T = 1/rate); then TAT moves forward by `n*T`. That is a token bucket of `burst` tokens refilled at `rate`
per second, in one stored value, with the exact wait until it would be allowed as a by-product.

Two limits use it: requests per key (checked right after authentication, before the body is read) and items
(events, feedback, LLM spans) per key (checked once the batch has parsed). A refused request stores nothing.

With several collector processes the state lives in Redis, updated by one Lua script (atomic, and timed by the
Redis server's clock, so hosts with skewed clocks agree). If Redis stops answering, the collector does not stop
ingesting: each process falls back to its own in-process buckets (a per-process limit instead of a shared one),
counts the fallback in Prometheus and logs it once, and tries Redis again a few seconds later.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import HTTPException, status
from prometheus_client import Counter

from monitor.queue import runs_inline
from monitor.settings import Settings

log = logging.getLogger(__name__)

RATE_LIMITED = Counter(
    "driftloop_rate_limited_total", "Requests refused with 429 by a per-key rate limit", ["limit"]
)
BACKEND_ERRORS = Counter(
    "driftloop_rate_limit_backend_errors_total",
    "Rate-limit checks that could not reach Redis and used the process's own buckets instead",
)

REQUESTS = "requests"
ITEMS = "items"


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    @property
    def interval(self) -> float:
        return 1.0 / self.per_second


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until the same request would be allowed


def gcra(tat: float, now: float, rate: Rate, cost: int) -> tuple[Decision, float]:
    """One GCRA step, pure: the decision and the new TAT (unchanged when refused)."""
    start = max(tat, now)
    new_tat = start + cost * rate.interval
    allow_at = new_tat - rate.burst * rate.interval
    if allow_at > now:
        return Decision(False, allow_at - now), tat
    return Decision(True), new_tat


class Backend(Protocol):
    def take(self, key: str, rate: Rate, cost: int) -> Decision: ...


class MemoryBackend:
    """Buckets of this process (embedded mode, and the fallback when Redis is away)."""

    _PRUNE_AT = 100_000  # keys; idle ones (TAT in the past, i.e. a full bucket) are dropped past this

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tats: dict[str, float] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: Rate, cost: int) -> Decision:
        with self._lock:
            now = self._clock()
            decision, tat = gcra(self._tats.get(key, now), now, rate, cost)
            self._tats[key] = tat
            if len(self._tats) > self._PRUNE_AT:
                self._tats = {k: t for k, t in self._tats.items() if t > now}
            return decision


# KEYS[1] the bucket; ARGV: seconds per unit, burst (units), cost (units). Returns {allowed, retry_after}.
# Floats travel as strings: Redis would truncate a Lua number reply to an integer.
_GCRA_LUA = """
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + cost * interval
local allow_at = new_tat - burst * interval
if allow_at > now then
  return {0, string.format('%.6f', allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) * 1000)))
return {1, '0'}
"""


class RedisBackend:
    """Buckets shared by every collector process through Redis; the process's own buckets while it is away."""

    def __init__(self, url: str, prefix: str, *, timeout: float = 0.25, retry_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_GCRA_LUA)
        self._prefix = prefix
        self._fallback = MemoryBackend(clock)
        self._clock = clock
        self._retry_seconds = retry_seconds
        self._down_until = 0.0
        self._down = False
        self._lock = threading.Lock()

    def take(self, key: str, rate: Rate, cost: int) -> Decision:
        import redis

        if self._clock() < self._down_until:
            BACKEND_ERRORS.inc()
            return self._fallback.take(key, rate, cost)
        try:
            allowed, wait = self._script(keys=[self._prefix + key], args=[repr(rate.interval), rate.burst, cost])
        except redis.RedisError as exc:
            self._went_down(exc)
            BACKEND_ERRORS.inc()
            return self._fallback.take(key, rate, cost)
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    log.warning("rate limiting: Redis answers again; limits are shared across processes again")
        return Decision(bool(int(allowed)), float(wait))

    def _went_down(self, exc: Exception) -> None:
        # A request must not wait for a Redis timeout each time: skip Redis for a few seconds, then try again.
        with self._lock:
            self._down_until = self._clock() + self._retry_seconds
            if not self._down:
                self._down = True
                log.warning("rate limiting: Redis unreachable (%s); each collector process limits on its own "
                            "until it answers again", type(exc).__name__)

    def close(self) -> None:
        self._redis.close()


class RateLimiter:
    """The limits of one collector app. A limit whose rate is None is off."""

    def __init__(self, backend: Backend | None, requests: Rate | None, items: Rate | None) -> None:
        self.backend = backend
        self.requests = requests
        self.items = items

    def check(self, identity: str, limit: str, cost: int = 1) -> None:
        """Raise 429 with `Retry-After` when `identity` is over `limit`; otherwise take `cost` units."""
        rate = self.requests if limit == REQUESTS else self.items
        if rate is None or self.backend is None or cost <= 0:
            return
        decision = self.backend.take(f"{limit}:{identity}", rate, min(cost, rate.burst))
        if decision.allowed:
            return
        RATE_LIMITED.labels(limit).inc()
        wait = max(1, math.ceil(decision.retry_after))  # Retry-After is whole seconds; never "0"
        unit = "requests" if limit == REQUESTS else "events or feedback items"
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit exceeded for this API key: {rate.per_second:g} {unit} per second (burst {rate.burst}); "
            f"nothing was stored, retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )


def _rate(per_second: float, burst: int) -> Rate | None:
    return Rate(per_second, burst) if per_second > 0 else None


def backend_name(settings: Settings) -> str:
    """`auto` shares limits through Redis wherever Redis is part of the deployment (Celery or production)."""
    if settings.rate_limit_backend != "auto":
        return settings.rate_limit_backend
    return "redis" if not runs_inline(settings) or settings.mode == "production" else "memory"


def build_rate_limiter(settings: Settings) -> RateLimiter:
    requests = _rate(settings.rate_limit_per_second, settings.rate_limit_burst)
    items = _rate(settings.rate_limit_events_per_second, settings.rate_limit_events_burst)
    if requests is None and items is None:
        return RateLimiter(None, None, None)
    backend: Backend
    if backend_name(settings) == "redis":
        backend = RedisBackend(settings.redis_url, f"{settings.celery_key_prefix}driftloop:ratelimit:")
    else:
        backend = MemoryBackend()
    return RateLimiter(backend, requests, items)

