"""Which failures are worth repeating later: the basis of every job's retry decision."""

from __future__ import annotations

import httpx
import openai
import psycopg
import sqlalchemy.exc

_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    openai.APIConnectionError,  # includes timeouts
    openai.RateLimitError,
    openai.InternalServerError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    psycopg.OperationalError,
    httpx.TransportError,
    ConnectionError,
    TimeoutError,
)


def is_transient(exc: BaseException) -> bool:
    """True when the same work may succeed on a later attempt.

    Exceptions that know (e.g. Kommo errors, via `retryable`) decide for themselves;
    a validation error or a missing record fails at once instead of retrying for minutes.
    """
    retryable = getattr(exc, "retryable", None)
    if isinstance(retryable, bool):
        return retryable
    return isinstance(exc, _TRANSIENT_TYPES)
