"""Taking turns: at most `limit` requests per `period` seconds per key, waiting rather than failing.

A limiter that counts requests when it lets them go cannot promise anything about when they
arrive: a request held up after its turn (a new TCP or TLS connection, a busy event loop)
arrives late, next to requests that were let go a whole period later, and the server sees
more than `limit` in one of its windows. So here a request counts from the moment it gets its
turn until `period` after it is done (`Turn.done()`, called once the response is in).
Whenever it reached the server, it did so in that span; any `period`-long window at the
server can only hold requests whose spans the limiter saw overlapping, and it never lets more
than `limit` overlap. The price is throughput: about `limit / (period + latency)` per second.

With Redis the log of requests is shared by every process on every machine, and Redis's own
clock stamps it, so processes need not agree on the time. A request still running counts
with a lease, so the turns of a process that died mid-request come back after LEASE_SECONDS.
Without Redis, or while Redis is unreachable, the log lives in this process: right for one
process, degraded (not broken) for several.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("rate_limit")

# Longer than any request may run (the HTTP client gives up well before).
LEASE_SECONDS = 30.0
# How often to look again while every turn is taken by requests still running.
POLL_SECONDS = 0.05
# Waiters that wake together would ask again together; a little spread keeps them apart.
_WAKE_SPREAD_SECONDS = 0.005

Done = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Turn:
    waited: float  # seconds spent waiting for it
    done: Done  # call when the request is over: it keeps counting for one period more


class RateLimiter(Protocol):
    async def acquire(self, key: str) -> Turn:
        """Wait for a turn under `key`; it counts until one period after `done()`."""
        ...


def _pause(seconds: float) -> float:
    return seconds + random.uniform(0, _WAKE_SPREAD_SECONDS)  # noqa: S311 - not crypto


class LocalRateLimiter:
    """The log in this process's memory."""

    def __init__(
        self,
        limit: int,
        period: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if limit < 1 or period <= 0:
            raise ValueError("a rate limit needs limit >= 1 and period > 0")
        self.limit = limit
        self.period = period
        self._clock = clock
        self._sleep = sleep
        # key → {ticket: when the request was done (inf while it runs)}
        self._turns: dict[str, dict[int, float]] = {}
        self._tickets = itertools.count()
        # Event loops in other threads (the api and a sandbox in tests) may share the limiter.
        self._lock = threading.Lock()

    async def acquire(self, key: str) -> Turn:
        waited = 0.0
        while True:
            ticket, delay = self.take(key)
            if ticket is not None:
                return Turn(waited, self._done_callback(key, ticket))
            pause = _pause(delay)
            await self._sleep(pause)
            waited += pause

    def take(self, key: str) -> tuple[int | None, float]:
        """(a ticket, 0) when a turn is free now; else (None, seconds worth waiting)."""
        with self._lock:
            now = self._clock()
            turns = self._turns.setdefault(key, {})
            for ticket, done_at in list(turns.items()):
                if done_at <= now - self.period:
                    del turns[ticket]
            if len(turns) < self.limit:
                ticket = next(self._tickets)
                turns[ticket] = math.inf
                return ticket, 0.0
            soonest = min(turns.values())
            if soonest == math.inf:  # all still running: their end frees a turn
                return None, POLL_SECONDS
            return None, max(soonest + self.period - now, 0.001)

    def done(self, key: str, ticket: int) -> None:
        with self._lock:
            turns = self._turns.get(key, {})
            if ticket in turns:
                turns[ticket] = self._clock()

    def _done_callback(self, key: str, ticket: int) -> Done:
        async def done() -> None:
            self.done(key, ticket)

        return done


# KEYS[1]: the log, a sorted set of request ids scored in milliseconds by when each request
# was done, or by its lease's end while it runs.
# ARGV: limit, period, lease, poll (milliseconds), the new request's id.
# Returns 0 when the request got its turn, else the milliseconds worth waiting.
# Milliseconds keep every number exact through Lua's 14-digit number formatting.
_ACQUIRE_SCRIPT = """
local limit, period, lease, poll = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[5])
  redis.call('PEXPIRE', KEYS[1], lease + period + 1000)
  return 0
end
local soonest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
if soonest > now then
  return poll
end
return math.max(1, soonest + period - now)
"""
# KEYS[1]: the log; ARGV[1]: the request's id. Stamps it done now (if its lease still holds).
_DONE_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 0
"""


class RedisRateLimiter:
    """The log in Redis, checked and written by atomic scripts."""

    def __init__(
        self,
        redis: Redis,
        limit: int,
        period: float,
        *,
        prefix: str = "rate-limit:",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.limit = limit
        self.period = period
        self._arguments = [
            limit,
            max(1, round(period * 1000)),
            round(LEASE_SECONDS * 1000),
            round(POLL_SECONDS * 1000),
        ]
        self._prefix = prefix
        self._sleep = sleep
        self._acquire = redis.register_script(_ACQUIRE_SCRIPT)
        self._done = redis.register_script(_DONE_SCRIPT)
        self._fallback = LocalRateLimiter(limit, period, sleep=sleep)
        self._degraded = False

    async def acquire(self, key: str) -> Turn:
        waited = 0.0
        log_key, request_id = self._prefix + key, uuid.uuid4().hex
        while True:
            try:
                delay_ms = int(
                    await self._acquire(keys=[log_key], args=[*self._arguments, request_id])
                )
            except (RedisError, OSError) as exc:
                # Redis down is degraded, not broken: this process still keeps its own count.
                self._note_failure(key, exc)
                turn = await self._fallback.acquire(key)
                return Turn(waited + turn.waited, turn.done)
            if self._degraded:
                log.info("rate_limit_redis_recovered", key=key)
                self._degraded = False
            if delay_ms <= 0:
                return Turn(waited, self._done_callback(log_key, request_id))
            pause = _pause(delay_ms / 1000)
            await self._sleep(pause)
            waited += pause

    def _done_callback(self, log_key: str, request_id: str) -> Done:
        async def done() -> None:
            try:
                await self._done(keys=[log_key], args=[request_id])
            except (RedisError, OSError) as exc:
                # The lease ends the turn instead, later than it could have.
                self._note_failure(log_key, exc)

        return done

    def _note_failure(self, key: str, exc: BaseException) -> None:
        if not self._degraded:
            log.warning(
                "rate_limit_redis_unavailable", key=key, error=f"{type(exc).__name__}: {exc}"
            )
            self._degraded = True


def create_rate_limiter(redis: Redis | None, limit: int, period: float) -> RateLimiter:
    """Shared by every process through Redis when there is one; this process's own otherwise."""
    if redis is None:
        return LocalRateLimiter(limit, period)
    return RedisRateLimiter(redis, limit, period)


class FixedWindowCounter:
    """Counts by key within the current fixed window, in this process's memory: the fallback
    where no Redis shares a count between processes (login attempts per address)."""

    def __init__(self) -> None:
        self._window = -1
        self._counts: Counter[str] = Counter()

    def count(self, key: str, window: int) -> int:
        """Add one to `key` in `window` (older windows are forgotten); the new count."""
        if window != self._window:
            self._window, self._counts = window, Counter()
        self._counts[key] += 1
        return self._counts[key]
