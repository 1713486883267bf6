"""A small cache of text values with expiry: in Redis when configured, else in this process.

A cache is only ever a shortcut, so trouble with Redis is a miss, never the caller's error:
the first failure of an outage is logged, each one is counted (cache_errors_total), and
the caller reads the source instead. Writes that fail are lost: an entry a failed delete
left behind lives until its TTL ends, which bounds how stale an outage can make it.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

import structlog
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = structlog.get_logger("cache")

CACHE_LOOKUPS = Counter("cache_lookups_total", "Cache lookups by result (hit, miss).", ["result"])
CACHE_ERRORS = Counter(
    "cache_errors_total",
    "Cache operations Redis failed, by operation (get, set, delete); each was taken as a miss.",
    ["operation"],
)


class Cache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_seconds: float) -> None: ...

    async def delete(self, key: str) -> None: ...


def _count_lookup(value: str | None) -> str | None:
    CACHE_LOOKUPS.labels(result="miss" if value is None else "hit").inc()
    return value


class LocalCache:
    """This process's memory: right for one process, which is what runs without Redis."""

    def __init__(
        self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, str]] = {}  # key → (expires at, value)
        # The api and the worker of `up`, or a test and its servers, may run event loops in
        # several threads of one process.
        self._lock = threading.Lock()

    async def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] <= self._clock():
                del self._entries[key]
                entry = None
        return _count_lookup(entry[1] if entry else None)

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        with self._lock:
            now = self._clock()
            if key not in self._entries and len(self._entries) >= self._max_entries:
                self._make_room(now)
            self._entries[key] = (now + ttl_seconds, value)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def _make_room(self, now: float) -> None:
        for key in [key for key, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest written


class RedisCache:
    """Shared by every process that uses the same Redis, so a delete is seen by all."""

    def __init__(self, redis: Redis, *, prefix: str = "cache:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._failing = False

    async def get(self, key: str) -> str | None:
        try:
            raw = await self._redis.get(self._prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("get", exc)
            raw = None
        else:
            self._succeeded()
        return _count_lookup(raw.decode() if isinstance(raw, bytes) else raw)

    async def set(self, key: str, value: str, ttl_seconds: float) -> None:
        try:
            await self._redis.set(self._prefix + key, value, px=max(1, round(ttl_seconds * 1000)))
        except (RedisError, OSError) as exc:
            self._failed("set", exc)
        else:
            self._succeeded()

    async def delete(self, key: str) -> None:
        try:
            await self._redis.delete(self._prefix + key)
        except (RedisError, OSError) as exc:
            self._failed("delete", exc)
        else:
            self._succeeded()

    def _failed(self, operation: str, exc: BaseException) -> None:
        CACHE_ERRORS.labels(operation=operation).inc()
        if not self._failing:
            self._failing = True
            log.warning(
                "cache_redis_unavailable",
                operation=operation,
                error=f"{type(exc).__name__}: {exc}",
            )

    def _succeeded(self) -> None:
        if self._failing:
            self._failing = False
            log.info("cache_redis_recovered")


_in_process = LocalCache()
_over_redis: weakref.WeakKeyDictionary[Redis, RedisCache] = weakref.WeakKeyDictionary()


def process_cache(redis: Redis | None) -> Cache:
    """The process's cache: one per Redis client (so an outage is logged once, not per call),
    or, without Redis, the one in this process's memory."""
    if redis is None:
        return _in_process
    cache = _over_redis.get(redis)
    if cache is None:
        cache = _over_redis[redis] = RedisCache(redis)
    return cache
