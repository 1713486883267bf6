"""A Kommo account's connection from start to end: OAuth state, the callback, long-lived
tokens, disconnecting, and Kommo's uninstall hook.

The OAuth `state` binds a callback to the organization that started it: it is signed with
SECRET_KEY and expires, so a callback cannot connect an account to another organization.
The code is exchanged at the account's own domain (the callback's `referer`), which must be
a Kommo domain or the configured sandbox: our client secret goes only there.

Nothing is written until Kommo has given tokens and said which account they open; tokens are
stored encrypted, and connecting an account again updates its connection. Every connect, the
first or a later one, subscribes our webhook in the account (a job deferred with the write);
a reconnect that ends an outage also answers the customers who wrote meanwhile
(missed_messages). Disconnecting removes the webhook as far as Kommo lets us, forgets the
tokens and keeps the history.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm import repository
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoAuthError, KommoError
from agent_platform.crm.kommo.missed_messages import OUTAGES, answer_missed_messages
from agent_platform.crm.kommo.oauth import (
    KommoGrantRejectedError,
    OAuthClient,
    account_base_url,
    authorize_url,
    exchange_code,
    oauth_client,
)
from agent_platform.crm.kommo.session import rate_limit_hook
from agent_platform.crm.kommo.tasks import defer_webhook_subscription
from agent_platform.crm.kommo.webhook_subscription import WebhookRemoval, unsubscribe
from agent_platform.crm.models import ConnectionStatus, CrmConnection
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.services import Services

log = structlog.get_logger("kommo.connections")

# Time for an admin to log in to Kommo and consent; Kommo's code itself lives 20 minutes.
STATE_TTL_SECONDS = 30 * 60
_STATE_CONTEXT = b"kommo-oauth-state:"


class InvalidStateError(AppError):
    code = "invalid_state"


class UntrustedKommoDomainError(AppError):
    code = "invalid_kommo_domain"


class AuthorizationDeclinedError(AppError):
    code = "authorization_declined"


class KommoRefusedError(AppError):
    code = "kommo_refused"


class KommoUnreachableError(AppError):
    status_code = 502
    code = "kommo_unavailable"


class OAuthNotConfiguredError(AppError):
    status_code = 503
    code = "kommo_oauth_not_configured"


class InvalidSignatureError(AppError):
    status_code = 401
    code = "invalid_signature"


class UninstallHookError(AppError):
    code = "invalid_uninstall_hook"


@dataclass(frozen=True)
class AuthorizationStart:
    authorize_url: str
    state: str
    expires_at: datetime


# --- state --------------------------------------------------------------------------------


def sign_state(secret_key: str, organization_id: uuid.UUID, *, now: float | None = None) -> str:
    expires = int((now if now is not None else time.time()) + STATE_TTL_SECONDS)
    payload = {"org": str(organization_id), "exp": expires, "nonce": secrets.token_urlsafe(12)}
    encoded = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{encoded}.{_b64(_mac(secret_key, encoded))}"


def verify_state(secret_key: str, state: str, *, now: float | None = None) -> uuid.UUID:
    """The organization a state was issued to; InvalidStateError if forged, altered or old."""
    encoded, _, signature = state.partition(".")
    try:
        given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    except ValueError:
        given = b""
    if not hmac.compare_digest(given, _mac(secret_key, encoded)):
        raise InvalidStateError("The OAuth state is not one this platform issued.")
    try:
        payload = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        organization_id, expires = uuid.UUID(payload["org"]), int(payload["exp"])
    except (ValueError, LookupError, TypeError) as exc:
        raise InvalidStateError("The OAuth state is malformed.") from exc
    if expires < (now if now is not None else time.time()):
        raise InvalidStateError("The OAuth state has expired; start connecting again.")
    return organization_id


def _mac(secret_key: str, encoded: str) -> bytes:
    return hmac.new(secret_key.encode(), _STATE_CONTEXT + encoded.encode(), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- connecting ---------------------------------------------------------------------------


def start_authorization(
    services: Services, organization_id: uuid.UUID, mode: str
) -> AuthorizationStart:
    client = require_oauth_client(services)
    state = sign_state(_secret_key(services), organization_id)
    return AuthorizationStart(
        authorize_url=authorize_url(
            services.settings.kommo_oauth_url, client.client_id, state, mode
        ),
        state=state,
        expires_at=datetime.fromtimestamp(time.time() + STATE_TTL_SECONDS, UTC),
    )


async def connect_with_code(
    services: Services, *, code: str, state: str, referer: str
) -> CrmConnection:
    """The OAuth callback: check the state, exchange the code, keep the account's tokens."""
    organization_id = verify_state(_secret_key(services), state)
    client = require_oauth_client(services)
    base_url = _trusted_base_url(services, referer)
    structlog.contextvars.bind_contextvars(organization_id=str(organization_id))
    try:
        grant = await exchange_code(services.http, base_url, client, code)
    except KommoGrantRejectedError as exc:
        raise KommoRefusedError(
            "Kommo did not accept the authorization code (used, expired, or for another "
            "integration); connect the account again.",
            details={"kommo": exc.detail},
        ) from exc
    except KommoError as exc:
        raise KommoUnreachableError("Kommo could not be reached; try again.") from exc
    account_id, subdomain = await _account_of(services, base_url, grant.access_token)
    tokens = _Tokens(grant.access_token, grant.refresh_token, grant.expires_at)
    connection = await _keep(services, organization_id, base_url, account_id, subdomain, tokens)
    log.info("kommo_account_connected", account_id=account_id, auth="oauth")
    return connection


async def connect_with_long_lived_token(
    services: Services,
    organization_id: uuid.UUID,
    *,
    domain: str,
    access_token: str,
    expires_at: datetime | None,
) -> CrmConnection:
    """A private integration's long-lived token: checked with Kommo, kept, never refreshed."""
    base_url = _trusted_base_url(services, domain)
    account_id, subdomain = await _account_of(services, base_url, access_token)
    tokens = _Tokens(access_token, refresh_token=None, expires_at=expires_at)
    connection = await _keep(services, organization_id, base_url, account_id, subdomain, tokens)
    log.info("kommo_account_connected", account_id=account_id, auth="long_lived")
    return connection


async def list_connections(services: Services, organization_id: uuid.UUID) -> list[CrmConnection]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return await repository.connections_of(session, organization_id)


@dataclass(frozen=True)
class Disconnection:
    connection: CrmConnection
    webhook: WebhookRemoval


DISCONNECTED_REASON = "disconnected by the organization"


async def disconnect(
    services: Services, organization_id: uuid.UUID, connection_id: uuid.UUID
) -> Disconnection:
    """Remove our webhook from the account (best effort), then switch the connection off and
    forget its tokens. Its inbox, deliveries and tasks stay; connecting again resumes it."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        connection = await require_connection(session, organization_id, connection_id)
    # Outside any transaction: Kommo may take seconds to answer, or not answer at all.
    webhook = await unsubscribe(services, connection)
    async with tenant_transaction(services.sessions, organization_id) as session:
        await repository.disconnect_connection(
            session, connection_id, DISCONNECTED_REASON, webhook_error=webhook.note
        )
        connection = await require_connection(session, organization_id, connection_id)
    log.info(
        "kommo_account_disconnected",
        account_id=connection.account_id,
        webhook_removed=webhook.removed,
    )
    return Disconnection(connection, webhook)


async def require_connection(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID
) -> CrmConnection:
    """The organization's connection; another organization's is as unknown as a missing one."""
    connection = await repository.connection_of(session, organization_id, connection_id)
    if connection is None:
        raise NotFoundError("This organization has no Kommo connection with this id.")
    return connection


def verify_uninstall_signature(
    client: OAuthClient, *, account_id: str, client_uuid: str, signature: str
) -> None:
    """Kommo signs its "integration disabled" hook: HMAC-SHA256 of `client_uuid|account_id`
    with the client secret, in hex (kommo.com/developers/content/oauth/step-by-step)."""
    expected = hmac.new(
        client.client_secret.encode(), f"{client_uuid}|{account_id}".encode(), hashlib.sha256
    ).hexdigest()
    same_client = hmac.compare_digest(client_uuid.encode(), client.client_id.encode())
    if not (hmac.compare_digest(signature.lower().encode(), expected.encode()) and same_client):
        raise InvalidSignatureError("The signature does not match this integration.")


async def uninstall(services: Services, *, account_id: int) -> int:
    """The integration was removed from Kommo account `account_id`: its connections stop."""
    async with transaction(services.sessions) as session:
        disabled = await repository.disable_oauth_connections_of_account(
            session, account_id, "the integration was uninstalled in Kommo"
        )
    log.warning("kommo_integration_uninstalled", account_id=account_id, connections=disabled)
    return disabled


# --- helpers ------------------------------------------------------------------------------


def require_oauth_client(services: Services) -> OAuthClient:
    client = oauth_client(services.settings)
    if client is None:
        raise OAuthNotConfiguredError(
            "Kommo OAuth is not configured: set KOMMO_CLIENT_ID, KOMMO_CLIENT_SECRET and "
            "KOMMO_REDIRECT_URI."
        )
    return client


def _secret_key(services: Services) -> str:
    secret_key = services.settings.secret_key
    assert secret_key is not None, "ensure_secrets() provides it"
    return secret_key.get_secret_value()


def _trusted_base_url(services: Services, domain: str) -> str:
    try:
        return account_base_url(domain, services.settings.kommo_sandbox_url)
    except ValueError as exc:
        raise UntrustedKommoDomainError(
            "This is not the domain of a Kommo account (e.g. acme.kommo.com).",
            details={"domain": domain[:200]},
        ) from exc


async def _account_of(services: Services, base_url: str, access_token: str) -> tuple[int, str]:
    """Which account the token opens (and that it opens one at all)."""
    kommo = KommoClient(
        base_url,
        access_token,
        services.http,
        before_request=rate_limit_hook(services, base_url),
    )
    try:
        account = await kommo.account.get()
    except KommoAuthError as exc:
        raise KommoRefusedError(
            "Kommo did not accept the access token.", details={"kommo": exc.detail}
        ) from exc
    except KommoError as exc:
        raise KommoUnreachableError("Kommo could not be reached; try again.") from exc
    return account.id, account.subdomain


@dataclass(frozen=True)
class _Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime | None


async def _keep(
    services: Services,
    organization_id: uuid.UUID,
    base_url: str,
    account_id: int,
    subdomain: str,
    tokens: _Tokens,
) -> CrmConnection:
    box = services.secrets
    values: dict[str, Any] = {
        "subdomain": subdomain[:100],
        "base_url": base_url,
        "access_token_encrypted": box.encrypt(tokens.access_token),
        "refresh_token_encrypted": box.encrypt(tokens.refresh_token)
        if tokens.refresh_token
        else None,
        "token_expires_at": tokens.expires_at,
        "status": ConnectionStatus.ACTIVE.value,
        "status_reason": None,
        # The subscription job will tell.
        "webhook_subscribed_at": None,
        "webhook_error": None,
    }
    try:
        return await _insert_or_update(services, organization_id, account_id, values)
    except IntegrityError:
        # The same account connected twice at once: the other request inserted; update it.
        return await _insert_or_update(services, organization_id, account_id, values)


async def _insert_or_update(
    services: Services, organization_id: uuid.UUID, account_id: int, values: dict[str, Any]
) -> CrmConnection:
    # Not scoped to the organization's database role (scope_to_organization): the jobs deferred
    # here are written to the job queue, which that role may not touch. Every statement below
    # names the organization itself.
    async with transaction(services.sessions) as session:
        connection = await repository.connection_for_account(session, organization_id, account_id)
        outage_ended = connection is not None and connection.status in OUTAGES
        if connection is None:
            connection = await repository.add_connection(
                session,
                CrmConnection(
                    organization_id=organization_id,
                    account_id=account_id,
                    webhook_token=secrets.token_urlsafe(24),
                    status_changed_at=datetime.now(UTC),
                    **values,
                ),
            )
        else:
            if connection.status != ConnectionStatus.ACTIVE.value:
                connection.status_changed_at = datetime.now(UTC)
            for name, value in values.items():
                setattr(connection, name, value)
            await session.flush()
        await defer_webhook_subscription(
            session, services, connection, public_base_url=services.settings.public_base_url
        )
        if outage_ended:
            await answer_missed_messages(session, services, connection.id)
        await session.refresh(connection)
        return connection
