"""Typed failures of Kommo API calls, so callers decide on retry or hand-over by type, not text.

The names read as outcomes (`KommoNotFound`, `KommoRateLimited`); the `Error` suffix rule
(N818) is waived for them because they are the names the rest of the platform uses.
"""

from __future__ import annotations

from typing import Any, ClassVar


class KommoError(Exception):
    """A Kommo call failed. `status` is the HTTP status, or None when no response arrived."""

    # Whether the same call may succeed if repeated later; the job layer retries only these.
    retryable: ClassVar[bool] = False

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"Kommo API {status or 'transport'} error: {detail}")
        self.status = status
        self.detail = detail


class KommoAuthError(KommoError):
    """401: the access token is wrong or expired; refreshing it (not retrying) is the cure."""


class KommoNotFound(KommoError):  # noqa: N818
    """The entity does not exist (Kommo says so with 404, or with 204 for a single entity)."""


class KommoValidationError(KommoError):
    """400: Kommo rejected the body; `validation_errors` is its per-item list of field errors."""

    def __init__(
        self, status: int, detail: str, *, validation_errors: list[dict[str, Any]]
    ) -> None:
        super().__init__(status, detail)
        self.validation_errors = validation_errors


class KommoRateLimited(KommoError):  # noqa: N818
    """429: over Kommo's request budget; wait `retry_after` seconds when Kommo said how long."""

    retryable = True

    def __init__(self, status: int, detail: str, *, retry_after: float | None) -> None:
        super().__init__(status, detail)
        self.retry_after = retry_after


class KommoUnavailable(KommoError):  # noqa: N818
    """5xx or no response at all: Kommo's trouble, not ours, so the call is worth repeating."""

    retryable = True
