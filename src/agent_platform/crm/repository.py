"""Every query on CRM connections, the webhook inbox and outgoing deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.models import (
    CrmConnection,
    CrmDelivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
)


@dataclass(frozen=True)
class WebhookTarget:
    connection_id: uuid.UUID
    organization_id: uuid.UUID


# The webhook path runs for every message Kommo sends, so its two statements are Core
# statements on the session's connection: no ORM identity map or unit of work to pay for.
_WEBHOOK_TARGET = select(CrmConnection.id, CrmConnection.organization_id).where(
    CrmConnection.webhook_token == bindparam("token")
)
_INSERT_INBOX_EVENT = (
    insert(InboxEvent)
    .on_conflict_do_nothing(constraint="uq_inbox_events_source_dedupe_key")
    .returning(InboxEvent.id)
)


async def webhook_target(session: AsyncSession, token: str) -> WebhookTarget | None:
    # Looked up before the organization is known: the token itself is what identifies it.
    connection = await session.connection()
    row = (await connection.execute(_WEBHOOK_TARGET, {"token": token})).first()
    return WebhookTarget(connection_id=row.id, organization_id=row.organization_id) if row else None


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
            "status": InboxStatus.PENDING.value,
        },
    )
    return result.scalar_one_or_none()


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
    session: AsyncSession, delivery_id: uuid.UUID, external_id: int | None
) -> None:
    await session.execute(
        update(CrmDelivery)
        .where(CrmDelivery.id == delivery_id)
        .values(status=DeliveryStatus.SENT.value, external_id=external_id, sent_at=func.now())
    )
