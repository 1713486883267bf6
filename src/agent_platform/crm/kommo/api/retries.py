"""Which refusals the transport repeats in place, and how long it waits before each repeat.

Kommo refuses some requests only for now:

- 429, over the account's request budget: Kommo did nothing, so any request may be repeated.
  The first wait is what Kommo asked for (`Retry-After`, at least `base_delay`), doubled for each
  further refusal of the same request, with a random share added on top (never taken off:
  Kommo said "not before") so that workers refused together do not come back together.
  Within `rate_limited_repeats` repeats and `max_total_wait` seconds a short storm is ridden
  out; past either, `KommoRateLimited` is raised and the job's own retry takes over, later and
  with its worker slot free in between.
- 5xx other than 504 (write_batched answers a 504 by halving the batch): a hiccup that a
  couple of quick repeats usually outlast. POST is not repeated here: a create answered 500
  may have been carried out, and the job's retry, which checks before it writes again, is
  the place to repeat it.
- No answer at all (status None) is left to the job's retry too: an unreachable Kommo rarely
  comes back within seconds, and a timed-out write may have been done.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

from agent_platform.crm.kommo.errors import (
    KommoError,
    KommoGatewayTimeout,
    KommoRateLimited,
    KommoUnavailable,
)

Sleep = Callable[[float], Awaitable[None]]
RetryReason = Literal["rate_limited", "unavailable"]

# Methods whose repeat leaves Kommo as one request would (POST creates a record each time).
_REPEATABLE_AFTER_5XX = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how long in all, one request is repeated in place (times in seconds).

    The defaults ride out a storm of about 7 seconds of 429s with Kommo's `Retry-After: 1`
    (waits of 1, 2 and 4 seconds) while holding a worker no more than 10 seconds.
    """

    rate_limited_repeats: int = 4
    unavailable_repeats: int = 2
    base_delay: float = 0.5  # the shortest first wait, whatever Kommo asked for
    max_total_wait: float = 10.0
    jitter: float = 0.25  # up to this share of a wait is added at random
    # Injectable so that tests follow the waits without spending them.
    sleep: Sleep = asyncio.sleep
    random_share: Callable[[], float] = random.random  # in [0, 1): how much jitter this time

    def __post_init__(self) -> None:
        if min(self.rate_limited_repeats, self.unavailable_repeats) < 0:
            raise ValueError("repeats cannot be negative")
        if self.base_delay <= 0 or self.max_total_wait < 0 or self.jitter < 0:
            raise ValueError("base_delay must be positive, max_total_wait and jitter not negative")

    def repeats_allowed(self, reason: RetryReason) -> int:
        return self.rate_limited_repeats if reason == "rate_limited" else self.unavailable_repeats

    def wait(self, error: KommoError, repeats_so_far: int) -> float:
        """Seconds before repeat number `repeats_so_far + 1` of a request refused with `error`."""
        asked = error.retry_after if isinstance(error, KommoRateLimited) else None
        first = max(asked or 0.0, self.base_delay)
        backoff: float = first * 2**repeats_so_far
        return backoff * (1 + self.jitter * self.random_share())


DEFAULT_RETRY_POLICY = RetryPolicy()


class RetryWait(NamedTuple):
    reason: RetryReason
    seconds: float


class RetryBudget:
    """What one request may still spend on repeats; ask it after each refusal."""

    def __init__(self, policy: RetryPolicy, method: str) -> None:
        self._policy = policy
        self._method = method.upper()
        self._repeats: Counter[RetryReason] = Counter()
        self._waited = 0.0

    def wait_before_repeat(self, error: KommoError) -> RetryWait | None:
        """How long to wait before sending the request again; None: raise `error` now."""
        reason = self._reason(error)
        if reason is None:
            return None
        repeats = self._repeats[reason]
        if repeats >= self._policy.repeats_allowed(reason):
            return None
        seconds = self._policy.wait(error, repeats)
        if self._waited + seconds > self._policy.max_total_wait:
            return None
        self._repeats[reason] += 1
        self._waited += seconds
        return RetryWait(reason, seconds)

    def _reason(self, error: KommoError) -> RetryReason | None:
        if isinstance(error, KommoRateLimited):
            return "rate_limited"
        if (
            isinstance(error, KommoUnavailable)
            and not isinstance(error, KommoGatewayTimeout)
            and error.status is not None
            and self._method in _REPEATABLE_AFTER_5XX
        ):
            return "unavailable"
        return None
