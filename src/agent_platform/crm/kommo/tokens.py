"""A valid access token for a connection: refreshed ahead of expiry, one refresh at a time.

Kommo's refresh tokens rotate: each refresh returns a new one and the old one stops working.
Two processes refreshing the same connection at once would therefore each spend it, and the
loser would be left holding a dead token. So a refresh happens under a PostgreSQL advisory
lock keyed on the connection: the database every api and worker process shares, Redis or not.
Whoever gets the lock reads the row again first: when another process refreshed meanwhile,
its token is used as is. Inside one process an asyncio lock queues the callers first, so a
burst of jobs costs one database connection, not one each.

The lock is a session-level one on a connection in autocommit mode: it is held across the
call to Kommo without holding a transaction open (house rule: no outside calls inside one),
and it is released by the server if the process dies.

When Kommo refuses the refresh token (revoked, already used, the integration removed), the
connection becomes `needs_reauth` and stays so until an admin connects the account again;
`KommoReauthRequired` tells callers to stop, and it is not retried.
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import structlog
from prometheus_client import Counter
from sqlalchemy import Engine, text

from agent_platform.crm import repository
from agent_platform.crm.kommo.api.transport import BeforeRequest, KommoTransport
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import (
    KommoAccountStopped,
    KommoAuthError,
    KommoUnavailable,
)
from agent_platform.crm.kommo.oauth import KommoGrantRejectedError, oauth_client, refresh_tokens
from agent_platform.crm.models import ConnectionStatus, CrmConnection
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("kommo.tokens")

TOKEN_REFRESHES = Counter(
    "kommo_token_refreshes_total",
    "Kommo OAuth token refreshes by result: refreshed, rejected (connection needs_reauth), "
    "failed (Kommo unavailable; tried again later).",
    ["result"],
)

# pg_try_advisory_lock(int, int): this namespace keeps our keys apart from other users' locks.
_LOCK_NAMESPACE = int.from_bytes(b"kmtk", "big")
_LOCK_POLL_SECONDS = 0.05
# Longer than a refresh can take (the HTTP client gives up after 15 s): waiting longer means
# the holder is stuck, and the job is better retried later.
LOCK_WAIT_SECONDS = 30.0


class KommoReauthRequired(KommoAuthError):  # noqa: N818 - an outcome, like the client's
    """Kommo refused the connection's tokens for good: an admin must connect it again."""

    def __init__(self, connection_id: uuid.UUID, reason: str) -> None:
        super().__init__(None, f"connection {connection_id} needs re-authorization: {reason}")
        self.connection_id = connection_id
        self.args = (self.detail,)  # no request failed: "Kommo API transport error" would mislead


class KommoConnectionInactive(KommoAccountStopped):
    """The connection is disabled or blocked: nothing is sent to Kommo for it."""

    def __init__(self, connection_id: uuid.UUID, status: str, reason: str | None) -> None:
        super().__init__(None, f"connection {connection_id} is {status}: {reason or 'no reason'}")
        self.connection_id = connection_id
        self.connection_status = status
        self.args = (self.detail,)


@dataclass(frozen=True)
class KommoAccess:
    """What a call to one Kommo account needs: where, the token, and the budget to draw on."""

    connection_id: uuid.UUID
    base_url: str
    access_token: str = field(repr=False)
    # Rate limits count per Kommo account; one account may be connected more than once.
    account_key: str
    # Awaited before each HTTP request to Kommo (session.py sets the rate limiter's turn).
    before_request: BeforeRequest | None = field(default=None, compare=False)

    def client(self, http: httpx.AsyncClient) -> KommoClient:
        return KommoClient(
            self.base_url, self.access_token, http, before_request=self.before_request
        )

    def transport(self, http: httpx.AsyncClient) -> KommoTransport:
        return KommoTransport(
            self.base_url, self.access_token, http, before_request=self.before_request
        )


async def current_access(
    services: Services, connection_id: uuid.UUID, *, rejected_token: str | None = None
) -> KommoAccess:
    """A token Kommo should accept now, refreshing it first when it expires soon.

    `rejected_token`: Kommo just answered 401 to this token, so it is refreshed whatever its
    expiry says (once: when another caller already replaced it, the replacement is used).
    """
    connection = await _read(services, connection_id)
    if not _needs_refresh(services, connection, rejected_token):
        return _access(services, connection)
    async with _refresh_lock(services, connection_id):
        # Another process (or coroutine) may have refreshed while we waited for the lock.
        connection = await _read(services, connection_id)
        if not _needs_refresh(services, connection, rejected_token):
            return _access(services, connection)
        return await _refresh(services, connection)


async def mark_connection(
    services: Services,
    connection_id: uuid.UUID,
    status: ConnectionStatus,
    reason: str,
) -> None:
    """Take an active connection out of service (needs_reauth, blocked), saying why."""
    async with transaction(services.sessions) as session:
        changed = await repository.set_connection_status(
            session, connection_id, status, reason[:1000], only_if=ConnectionStatus.ACTIVE
        )
    if changed:
        log.warning("kommo_connection_stopped", status=status.value, reason=reason)


async def _read(services: Services, connection_id: uuid.UUID) -> CrmConnection:
    async with transaction(services.sessions) as session:
        connection = await repository.get_connection(session, connection_id)
    if connection is None:
        raise KommoConnectionInactive(connection_id, "deleted", "the connection does not exist")
    structlog.contextvars.bind_contextvars(organization_id=str(connection.organization_id))
    if connection.status == ConnectionStatus.NEEDS_REAUTH.value:
        raise KommoReauthRequired(connection_id, connection.status_reason or "tokens refused")
    if connection.status != ConnectionStatus.ACTIVE.value:
        raise KommoConnectionInactive(connection_id, connection.status, connection.status_reason)
    if connection.access_token_encrypted is None:
        raise KommoReauthRequired(connection_id, "the connection has no access token")
    return connection


def _needs_refresh(
    services: Services, connection: CrmConnection, rejected_token: str | None
) -> bool:
    assert connection.access_token_encrypted is not None  # checked by _read
    if rejected_token is not None:
        current = services.secrets.decrypt(connection.access_token_encrypted)
        if hmac.compare_digest(current.encode(), rejected_token.encode()):
            return True
    if connection.token_expires_at is None:  # a long-lived token, or one we know no expiry of
        return False
    margin = timedelta(seconds=services.settings.kommo_token_refresh_margin_seconds)
    return connection.token_expires_at - margin <= datetime.now(UTC)


def _access(services: Services, connection: CrmConnection) -> KommoAccess:
    assert connection.access_token_encrypted is not None
    return KommoAccess(
        connection_id=connection.id,
        base_url=connection.base_url,
        access_token=services.secrets.decrypt(connection.access_token_encrypted),
        account_key=account_key(connection),
    )


def account_key(connection: CrmConnection) -> str:
    # The base URL names the account (its own domain), known from the first request on.
    return connection.base_url


async def _refresh(services: Services, connection: CrmConnection) -> KommoAccess:
    connection_id = connection.id
    if connection.refresh_token_encrypted is None:
        # A long-lived token Kommo refused: there is nothing to refresh it with.
        reason = "Kommo refused the long-lived token"
        await mark_connection(services, connection_id, ConnectionStatus.NEEDS_REAUTH, reason)
        raise KommoReauthRequired(connection_id, reason)
    client = oauth_client(services.settings)
    if client is None:
        # Our configuration, not the connection, is at fault: it is left as it is.
        raise KommoAuthError(
            None,
            "KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET and KOMMO_REDIRECT_URI are needed to refresh",
        )
    refresh_token = services.secrets.decrypt(connection.refresh_token_encrypted)
    try:
        grant = await refresh_tokens(services.http, connection.base_url, client, refresh_token)
    except KommoGrantRejectedError as exc:
        TOKEN_REFRESHES.labels(result="rejected").inc()
        reason = f"Kommo refused the refresh token: {exc.detail}"
        await mark_connection(services, connection_id, ConnectionStatus.NEEDS_REAUTH, reason)
        raise KommoReauthRequired(connection_id, reason) from exc
    except Exception:
        TOKEN_REFRESHES.labels(result="failed").inc()
        raise
    # The old refresh token is spent now: the new pair must be kept whatever happens next.
    async with transaction(services.sessions) as session:
        await repository.store_tokens(
            session,
            connection_id,
            access_token_encrypted=services.secrets.encrypt(grant.access_token),
            refresh_token_encrypted=services.secrets.encrypt(grant.refresh_token),
            expires_at=grant.expires_at,
        )
    TOKEN_REFRESHES.labels(result="refreshed").inc()
    log.info("kommo_token_refreshed", expires_at=grant.expires_at.isoformat())
    return KommoAccess(
        connection_id=connection_id,
        base_url=connection.base_url,
        access_token=grant.access_token,
        account_key=account_key(connection),
    )


# One queue per process (engine) and connection; weak, so a closed engine takes its locks along.
_process_locks: weakref.WeakKeyDictionary[Engine, dict[uuid.UUID, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@asynccontextmanager
async def _refresh_lock(services: Services, connection_id: uuid.UUID) -> AsyncIterator[None]:
    locks = _process_locks.setdefault(services.engine.sync_engine, {})
    async with (
        locks.setdefault(connection_id, asyncio.Lock()),
        _database_lock(services, connection_id),
    ):
        yield


@asynccontextmanager
async def _database_lock(services: Services, connection_id: uuid.UUID) -> AsyncIterator[None]:
    key = {"namespace": _LOCK_NAMESPACE, "key": int.from_bytes(connection_id.bytes[:4], "big")}
    key["key"] -= 1 << 31  # into int4's range
    async with services.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LOCK_WAIT_SECONDS
        acquire = text("SELECT pg_try_advisory_lock(:namespace, :key)")
        while not (await connection.execute(acquire, key)).scalar_one():
            if loop.time() > deadline:
                raise KommoUnavailable(None, "another process's token refresh did not finish")
            await asyncio.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            try:
                await connection.execute(text("SELECT pg_advisory_unlock(:namespace, :key)"), key)
            except BaseException:
                # Closing the session is what releases the lock then: the pool must not keep it.
                await connection.invalidate()
                raise
