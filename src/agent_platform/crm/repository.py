"""Every query on CRM connections, the webhook inbox and outgoing deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agent_platform.crm.models import (
    ConnectionStatus,
    CrmConnection,
    CrmDelivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
    ReplyChannel,
)


@dataclass(frozen=True)
class WebhookTarget:
    connection_id: uuid.UUID
    organization_id: uuid.UUID
    reply_channel: str = ReplyChannel.NOTE.value


# The webhook path runs for every message Kommo sends, so its two statements are Core
# statements on the session's connection: no ORM identity map or unit of work to pay for.
_WEBHOOK_TARGET = select(
    CrmConnection.id, CrmConnection.organization_id, CrmConnection.reply_channel
).where(CrmConnection.webhook_token == bindparam("token"))
_INSERT_INBOX_EVENT = (
    insert(InboxEvent)
    .on_conflict_do_nothing(constraint="uq_inbox_events_source_dedupe_key")
    .returning(InboxEvent.id)
)


async def webhook_target(session: AsyncSession, token: str) -> WebhookTarget | None:
    # Looked up before the organization is known: the token itself is what identifies it.
    connection = await session.connection()
    row = (await connection.execute(_WEBHOOK_TARGET, {"token": token})).first()
    if row is None:
        return None
    return WebhookTarget(row.id, row.organization_id, row.reply_channel)


async def get_connection(session: AsyncSession, connection_id: uuid.UUID) -> CrmConnection | None:
    return await session.get(CrmConnection, connection_id)


async def insert_inbox_event_if_new(
    session: AsyncSession,
    *,
    target: WebhookTarget,
    source: str,
    dedupe_key: str,
    payload: dict[str, Any],
    request_id: str | None,
    status: InboxStatus = InboxStatus.PENDING,
) -> uuid.UUID | None:
    """The new event's id, or None when an event with this key was received before."""
    connection = await session.connection()
    result = await connection.execute(
        _INSERT_INBOX_EVENT,
        {
            "id": uuid.uuid4(),
            "organization_id": target.organization_id,
            "connection_id": target.connection_id,
            "source": source,
            "dedupe_key": dedupe_key,
            "payload": payload,
            "request_id": request_id,
            "status": status.value,
        },
    )
    return result.scalar_one_or_none()


@dataclass(frozen=True)
class NewInboxEvent:
    dedupe_key: str
    payload: dict[str, Any]
    status: InboxStatus


async def insert_inbox_events(
    session: AsyncSession,
    *,
    target: WebhookTarget,
    source: str,
    events: Sequence[NewInboxEvent],
    request_id: str | None,
) -> dict[str, uuid.UUID]:
    """Store, in one statement, the events not received before; their ids by dedupe key."""
    if not events:
        return {}
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": target.organization_id,
            "connection_id": target.connection_id,
            "source": source,
            "dedupe_key": event.dedupe_key,
            "payload": event.payload,
            "request_id": request_id,
            "status": event.status.value,
        }
        for event in events
    ]
    statement = (
        insert(InboxEvent)
        .values(rows)
        .on_conflict_do_nothing(constraint="uq_inbox_events_source_dedupe_key")
        .returning(InboxEvent.id, InboxEvent.dedupe_key)
    )
    connection = await session.connection()
    return {row.dedupe_key: row.id for row in await connection.execute(statement)}


async def get_inbox_event(session: AsyncSession, event_id: uuid.UUID) -> InboxEvent | None:
    return await session.get(InboxEvent, event_id)


async def finish_inbox_event(
    session: AsyncSession, event_id: uuid.UUID, status: InboxStatus, error: str | None = None
) -> None:
    await session.execute(
        update(InboxEvent)
        .where(InboxEvent.id == event_id)
        .values(status=status.value, error=error, handled_at=func.now())
    )


async def reopen_unanswered_customer_messages(
    session: AsyncSession,
    connection_id: uuid.UUID,
    received_within: timedelta,
    *,
    errors: Sequence[str],
) -> list[uuid.UUID]:
    """Put back to `pending`, and return, the connection's customer messages that are the
    newest message of their lead within `received_within` and were ignored or failed with an
    error matching one of the LIKE patterns `errors`. A lead whose newest message is a
    manager's, or was answered, or still waits for its job, is left alone."""
    message = InboxEvent.payload["message"]
    lead = (message["entity_type"].astext, message["entity_id"].astext)
    left_unanswered = (
        InboxEvent.status.in_([InboxStatus.IGNORED.value, InboxStatus.FAILED.value]),
        or_(*(InboxEvent.error.like(pattern) for pattern in errors)),
    )
    newest_per_lead = (
        select(
            InboxEvent.id,
            and_(*left_unanswered).label("left_unanswered"),
            message["direction"].astext.label("direction"),
        )
        .where(
            InboxEvent.connection_id == connection_id,
            InboxEvent.payload.has_key("message"),
            InboxEvent.received_at >= func.now() - received_within,
        )
        .ext(distinct_on(*lead))
        .order_by(*lead, InboxEvent.received_at.desc(), InboxEvent.id.desc())
        .subquery()
    )
    unanswered = select(newest_per_lead.c.id).where(
        newest_per_lead.c.direction == "incoming", newest_per_lead.c.left_unanswered
    )
    result = await session.execute(
        update(InboxEvent)
        # Checked again on the row: a concurrent reconnect that reopened it first keeps it.
        .where(InboxEvent.id.in_(unanswered), *left_unanswered)
        .values(status=InboxStatus.PENDING.value, error=None, handled_at=None)
        .returning(InboxEvent.id)
    )
    return list(result.scalars())


async def delivery_by_key(session: AsyncSession, key: str) -> CrmDelivery | None:
    result = await session.scalars(select(CrmDelivery).where(CrmDelivery.idempotency_key == key))
    return result.one_or_none()


async def add_delivery(session: AsyncSession, delivery: CrmDelivery) -> CrmDelivery:
    session.add(delivery)
    await session.flush()
    return delivery


async def count_delivery_attempt(session: AsyncSession, delivery_id: uuid.UUID) -> None:
    await session.execute(
        update(CrmDelivery)
        .where(CrmDelivery.id == delivery_id)
        .values(attempts=CrmDelivery.attempts + 1)
    )


async def mark_delivery_sent(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    external_id: int | None,
    external_ref: str | None = None,
) -> None:
    await session.execute(
        update(CrmDelivery)
        .where(CrmDelivery.id == delivery_id)
        .values(
            status=DeliveryStatus.SENT.value,
            external_id=external_id,
            external_ref=external_ref,
            sent_at=func.now(),
        )
    )


# --- connections: tokens and status --------------------------------------------------------


async def connections_of(session: AsyncSession, organization_id: uuid.UUID) -> list[CrmConnection]:
    result = await session.scalars(
        select(CrmConnection)
        .where(CrmConnection.organization_id == organization_id)
        .order_by(CrmConnection.created_at, CrmConnection.id)
    )
    return list(result)


async def connection_of(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID
) -> CrmConnection | None:
    result = await session.scalars(
        select(CrmConnection).where(
            CrmConnection.id == connection_id, CrmConnection.organization_id == organization_id
        )
    )
    return result.one_or_none()


async def connection_for_account(
    session: AsyncSession, organization_id: uuid.UUID, account_id: int
) -> CrmConnection | None:
    result = await session.scalars(
        select(CrmConnection).where(
            CrmConnection.organization_id == organization_id,
            CrmConnection.account_id == account_id,
        )
    )
    return result.one_or_none()


async def add_connection(session: AsyncSession, connection: CrmConnection) -> CrmConnection:
    session.add(connection)
    await session.flush()
    return connection


async def store_tokens(
    session: AsyncSession,
    connection_id: uuid.UUID,
    *,
    access_token_encrypted: str,
    refresh_token_encrypted: str | None,
    expires_at: datetime | None,
) -> None:
    await session.execute(
        update(CrmConnection)
        .where(CrmConnection.id == connection_id)
        .values(
            access_token_encrypted=access_token_encrypted,
            refresh_token_encrypted=refresh_token_encrypted,
            token_expires_at=expires_at,
        )
    )


async def set_connection_status(
    session: AsyncSession,
    connection_id: uuid.UUID,
    status: ConnectionStatus,
    reason: str | None,
    *,
    only_if: ConnectionStatus | None = None,
) -> bool:
    """Change the status (and say why); with `only_if`, only from that status. True if changed."""
    statement = (
        update(CrmConnection)
        .where(CrmConnection.id == connection_id)
        .values(status=status.value, status_reason=reason, status_changed_at=func.now())
    )
    if only_if is not None:
        statement = statement.where(CrmConnection.status == only_if.value)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


# What a connection switched off keeps of its account: no token, and no webhook in it.
_SWITCHED_OFF = {
    "status": ConnectionStatus.DISABLED.value,
    "status_changed_at": func.now(),
    "access_token_encrypted": None,
    "refresh_token_encrypted": None,
    "token_expires_at": None,
    "webhook_subscribed_at": None,
}


async def disable_oauth_connections_of_account(
    session: AsyncSession, account_id: int, reason: str
) -> int:
    """Every OAuth connection to Kommo account `account_id`, in any organization: off, tokens
    gone (and our webhook, which Kommo removes with the integration). Long-lived tokens belong
    to the account's private integrations, not ours: kept."""
    result = await session.execute(
        update(CrmConnection)
        .where(
            CrmConnection.account_id == account_id,
            CrmConnection.refresh_token_encrypted.is_not(None),
        )
        .values(status_reason=reason, **_SWITCHED_OFF)
    )
    return int(getattr(result, "rowcount", 0))


async def disconnect_connection(
    session: AsyncSession, connection_id: uuid.UUID, reason: str, *, webhook_error: str | None
) -> None:
    """Off and without tokens; `webhook_error` says why our webhook may still be in Kommo."""
    await session.execute(
        update(CrmConnection)
        .where(CrmConnection.id == connection_id)
        .values(status_reason=reason, webhook_error=webhook_error, **_SWITCHED_OFF)
    )


async def record_webhook_subscribed(
    session: AsyncSession, connection_id: uuid.UUID, destination: str
) -> None:
    # Only while active: a connection disconnected meanwhile is not subscribed any more.
    await session.execute(
        update(CrmConnection)
        .where(
            CrmConnection.id == connection_id,
            CrmConnection.status == ConnectionStatus.ACTIVE.value,
        )
        .values(
            webhook_destination=destination, webhook_subscribed_at=func.now(), webhook_error=None
        )
    )


async def record_webhook_error(session: AsyncSession, connection_id: uuid.UUID, error: str) -> None:
    # Not on a disconnected connection: its error says what disconnecting left in Kommo.
    await session.execute(
        update(CrmConnection)
        .where(
            CrmConnection.id == connection_id,
            CrmConnection.status != ConnectionStatus.DISABLED.value,
        )
        .values(webhook_error=error)
    )


async def connections_by_status(engine: AsyncEngine) -> dict[str, int]:
    """How many connections each status has, across organizations (for /metrics)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(CrmConnection.status, func.count()).group_by(CrmConnection.status)
        )
        return {str(status): int(count) for status, count in rows}
