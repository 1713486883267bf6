"""The chat API's request limit per API key: at most CHAT_RATE_LIMIT_PER_MINUTE in a minute.

Unlike Kommo's limit (kit.rate_limit), which makes our own requests wait their turn, this one
refuses a caller's request at once with 429 and Retry-After: the caller decides when to come
back. Counted in fixed minute windows, in Redis when it is there (shared by every api
process) and in this process when it is not or cannot be reached: degraded, not broken.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from agent_platform.kit.errors import AppError

log = structlog.get_logger("chat.rate_limit")

WINDOW_SECONDS = 60


class ChatRateLimitedError(AppError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(
            f"Too many chat requests for this API key; try again in {retry_after_seconds} s.",
            details={"retry_after_seconds": retry_after_seconds},
        )
        self.retry_after_seconds = retry_after_seconds


class _LocalWindows:
    """The counts of this process, for the current window only."""

    def __init__(self) -> None:
        self._window = -1
        self._counts: Counter[str] = Counter()

    def count(self, key: str, window: int) -> int:
        if window != self._window:
            self._window, self._counts = window, Counter()
        self._counts[key] += 1
        return self._counts[key]


_local = _LocalWindows()


async def take_chat_request(redis: Redis | None, api_key_id: str, limit: int) -> None:
    """Count one request of the key, or ChatRateLimitedError when its minute is used up."""
    now = time.time()
    window = int(now // WINDOW_SECONDS)
    key = f"chat-rate:{api_key_id}:{window}"
    count = await _shared_count(redis, key) if redis is not None else None
    if count is None:
        count = _local.count(key, window)
    if count > limit:
        raise ChatRateLimitedError(max(1, math.ceil((window + 1) * WINDOW_SECONDS - now)))


async def _shared_count(redis: Redis, key: str) -> int | None:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
    except (RedisError, OSError) as exc:
        log.warning("chat_rate_limit_local", error=repr(exc))
        return None
    return int(count)
