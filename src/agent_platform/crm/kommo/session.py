"""Calling Kommo for a connection: a valid token, the shared rate limit, and Kommo's refusals.

    note_id = await call_kommo(services, connection_id, lambda kommo: kommo.add_note(...))

- the token comes from tokens.py (refreshed ahead of expiry, one refresh across processes);
- every HTTP request first waits its turn in the account's budget (KOMMO_REQUESTS_PER_SECOND,
  shared through Redis by all processes), counted in `kommo_rate_limit_waits_total`;
- a 401 costs one refresh and one more try; refused again, the connection needs re-auth;
- a 402 or 403 takes the connection out of service (`blocked`): calling on would only get
  our IP blocked by Kommo too.

The operation may run twice (after a 401), which is safe: Kommo did nothing the first time.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from prometheus_client import Counter, Histogram

from agent_platform.crm.kommo.api.transport import AfterRequest, BeforeRequest
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoAccountStopped, KommoAuthError
from agent_platform.crm.kommo.tokens import (
    KommoAccess,
    KommoConnectionInactive,
    KommoReauthRequired,
    current_access,
    mark_connection,
)
from agent_platform.crm.models import ConnectionStatus
from agent_platform.services import Services

T = TypeVar("T")

RATE_LIMIT_WAITS = Counter(
    "kommo_rate_limit_waits_total",
    "Kommo API requests that waited for a turn in their account's request budget.",
)
RATE_LIMIT_WAIT_SECONDS = Histogram(
    "kommo_rate_limit_wait_seconds",
    "Time a Kommo API request waited for its account's request budget (waits only).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)


def rate_limit_hook(services: Services, account_key: str) -> BeforeRequest:
    """The client's `before_request`: wait for the account's turn, count the wait, and hand
    back the turn's end for when the request is over."""

    async def wait_for_turn() -> AfterRequest:
        turn = await services.kommo_rate_limiter.acquire(account_key)
        if turn.waited > 0:
            RATE_LIMIT_WAITS.inc()
            RATE_LIMIT_WAIT_SECONDS.observe(turn.waited)
        return turn.done

    return wait_for_turn


def limited(services: Services, access: KommoAccess) -> KommoAccess:
    """The access with the account's rate limit in front of every request."""
    return replace(access, before_request=rate_limit_hook(services, access.account_key))


def client_for(services: Services, access: KommoAccess) -> KommoClient:
    return limited(services, access).client(services.http)


async def kommo_client_for(services: Services, connection_id: uuid.UUID) -> KommoClient:
    """A client with a token valid now and the account's rate limit (no 401 handling: see
    call_kommo for that)."""
    return client_for(services, await current_access(services, connection_id))


async def call_kommo(
    services: Services,
    connection_id: uuid.UUID,
    operation: Callable[[KommoClient], Awaitable[T]],
) -> T:
    """Run `operation` with a client for the connection, handling Kommo's refusals."""
    return await call_kommo_with(
        services, connection_id, lambda access: operation(access.client(services.http))
    )


async def call_kommo_with(
    services: Services,
    connection_id: uuid.UUID,
    operation: Callable[[KommoAccess], Awaitable[T]],
) -> T:
    """`call_kommo` for code that makes its own requests from the access (URL, token, limit)."""
    try:
        return await _with_one_refresh(services, connection_id, operation)
    except KommoConnectionInactive:
        raise
    except KommoAccountStopped as exc:
        reason = f"Kommo answered {exc.status}: {exc.detail}"
        await mark_connection(services, connection_id, ConnectionStatus.BLOCKED, reason)
        raise


async def _with_one_refresh(
    services: Services,
    connection_id: uuid.UUID,
    operation: Callable[[KommoAccess], Awaitable[T]],
) -> T:
    access = await current_access(services, connection_id)
    try:
        return await operation(limited(services, access))
    except KommoReauthRequired:
        raise
    except KommoAuthError:
        # Revoked early, or expired sooner than Kommo said: one refresh, one more try.
        rejected = access.access_token
    access = await current_access(services, connection_id, rejected_token=rejected)
    try:
        return await operation(limited(services, access))
    except KommoReauthRequired:
        raise
    except KommoAuthError as exc:
        reason = f"Kommo refused a freshly refreshed token: {exc.detail}"
        await mark_connection(services, connection_id, ConnectionStatus.NEEDS_REAUTH, reason)
        raise KommoReauthRequired(connection_id, reason) from exc
