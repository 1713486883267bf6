"""When a failed attempt is worth another, and how long to wait before it."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import openai

from agent_platform.llm.errors import AttemptFailure, FailureKind


@dataclass(frozen=True)
class RetryPolicy:
    # Retries of one model after its first attempt; then the next fallback model is tried.
    max_retries: int
    base_seconds: float
    # The longest wait before a retry. A provider asking for longer (Retry-After) has that
    # model out of service for now: the next model is tried at once instead.
    max_seconds: float

    def delay_before_retry(self, retries_done: int, failure: AttemptFailure) -> float | None:
        """Seconds to wait before retrying the same model, or None to move on to the next."""
        if retries_done >= self.max_retries:
            return None
        if failure.retry_after_seconds is not None:
            asked = max(failure.retry_after_seconds, 0.0)
            return asked if asked <= self.max_seconds else None
        ceiling = min(self.max_seconds, self.base_seconds * 2.0**retries_done)
        # Half fixed, half random: the wait still doubles each time, and the processes that
        # failed together do not all come back at the same instant.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - not a secret


def attempt_failure(exc: Exception, model: str) -> AttemptFailure | None:
    """The failure as one worth retrying (429, 5xx, timeouts, connection errors), or None."""
    if isinstance(exc, openai.APITimeoutError):
        return AttemptFailure(model, FailureKind.TIMEOUT, None, "no answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return AttemptFailure(model, FailureKind.CONNECTION, None, str(exc))
    if isinstance(exc, openai.APIStatusError) and (
        exc.status_code == 429 or exc.status_code >= 500
    ):
        kind = FailureKind.RATE_LIMITED if exc.status_code == 429 else FailureKind.SERVER_ERROR
        waited = retry_after_seconds(exc.response.headers, datetime.now(UTC))
        return AttemptFailure(model, kind, waited, f"{exc.status_code}: {exc.message}")
    return None


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """What the provider asked us to wait: OpenAI's `retry-after-ms`, else `Retry-After` in
    seconds or as an HTTP date; None when it did not say (or said it unreadably)."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return float(milliseconds) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return (parsedate_to_datetime(value) - now).total_seconds()
    except (TypeError, ValueError):
        return None
