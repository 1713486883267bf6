"""Typed failures of Kommo API calls, so callers decide on retry, refresh or hand-over by type.

The names read as outcomes (`KommoNotFound`, `KommoRateLimited`); the `Error` suffix rule
(N818) is waived for them because they are the names the rest of the platform uses.

`retryable` is what the job layer reads (kit/transient.py): True only where the same call may
succeed later without anyone acting. Three outcomes need a person or another component instead:
401 (the OAuth layer refreshes once, then asks for re-authorisation), 402 (the account is
unpaid) and 403 (the account or the integration is blocked: keep calling and Kommo blocks the
IP too). The last two share `KommoAccountStopped`, the signal to stop calling that account.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple


class KommoError(Exception):
    """A Kommo call failed. `status` is the HTTP status, or None when no response arrived."""

    # Whether the same call may succeed if repeated later; the job layer retries only these.
    retryable: ClassVar[bool] = False

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"Kommo API {status or 'transport'} error: {detail}")
        self.status = status
        self.detail = detail


class KommoAuthError(KommoError):
    """401: the access token is wrong, expired or revoked; a refresh (not a retry) is the cure."""


class KommoAccountStopped(KommoError):  # noqa: N818
    """The account cannot be served until a person acts (402, 403): stop calling it, alert."""


class KommoPaymentRequired(KommoAccountStopped):
    """402: the Kommo account is not paid for; every call fails until it is."""


class KommoBlocked(KommoAccountStopped):
    """403: the account, the integration or our IP is blocked (often after ignoring 429s)."""


class KommoNotFound(KommoError):  # noqa: N818
    """The entity does not exist (Kommo says so with 404, or with 204 for a single entity)."""


class ValidationIssue(NamedTuple):
    """One field error of one item of a batch, as Kommo's `validation-errors` names it."""

    request_id: str
    path: str  # dotted, e.g. "custom_fields_values.0.field_id"
    code: str
    detail: str


class KommoValidationError(KommoError):
    """400 (or 422): Kommo rejected the request; nothing of the batch was written.

    `validation_errors` is Kommo's list as sent (`[{"request_id", "errors": [{"code", "path",
    "detail"}]}]`); `issues` is the same flattened, one entry per field error.
    """

    def __init__(
        self, status: int, detail: str, *, validation_errors: list[dict[str, Any]]
    ) -> None:
        super().__init__(status, detail)
        self.validation_errors = validation_errors

    @property
    def issues(self) -> list[ValidationIssue]:
        return [
            ValidationIssue(
                str(item.get("request_id", "")),
                str(error.get("path", "")),
                str(error.get("code", "")),
                str(error.get("detail", "")),
            )
            for item in self.validation_errors
            if isinstance(item, dict)
            for error in item.get("errors") or []
            if isinstance(error, dict)
        ]


class KommoRateLimited(KommoError):  # noqa: N818
    """429: over Kommo's request budget, still after the transport's own waits (retries.py).

    `retry_after` is the wait Kommo asked for, in seconds, when it said one.
    """

    retryable = True

    def __init__(self, status: int, detail: str, *, retry_after: float | None) -> None:
        super().__init__(status, detail)
        self.retry_after = retry_after


class KommoUnavailable(KommoError):  # noqa: N818
    """5xx or no response at all: Kommo's trouble, not ours, so the call is worth repeating
    (the transport already repeated what was safe to, see retries.py)."""

    retryable = True


class KommoGatewayTimeout(KommoUnavailable):
    """504: Kommo gave up on the request; a batched write is repeated in smaller batches."""
