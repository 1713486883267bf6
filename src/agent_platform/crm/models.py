"""What we keep of a CRM: connections, the webhook inbox, outgoing deliveries, tasks and calls."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    NEEDS_REAUTH = "needs_reauth"
    DISABLED = "disabled"


class CrmConnection(IdMixin, TenantMixin, TimestampMixin, Base):
    """A Kommo account we act in. Tokens are stored encrypted (see kit.crypto)."""

    __tablename__ = "crm_connections"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'needs_reauth', 'disabled')", name="status"),
    )

    provider: Mapped[str] = mapped_column(String(32), default="kommo", server_default="kommo")
    subdomain: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    base_url: Mapped[str] = mapped_column(String(500))
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_token: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ConnectionStatus.ACTIVE.value)


class InboxStatus(StrEnum):
    PENDING = "pending"
    HANDLED = "handled"
    IGNORED = "ignored"
    FAILED = "failed"


class InboxEvent(IdMixin, TenantMixin, TimestampMixin, Base):
    """A webhook as received, stored before any work so nothing is lost and nothing repeats."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", name="uq_inbox_events_source_dedupe_key"),
        CheckConstraint("status IN ('pending', 'handled', 'ignored', 'failed')", name="status"),
        Index("ix_inbox_events_status_received_at", "status", "received_at"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    request_id: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING.value)
    error: Mapped[str | None] = mapped_column(Text)


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"


class CrmDelivery(IdMixin, TenantMixin, TimestampMixin, Base):
    """An outgoing side effect in the CRM, recorded under its idempotency key before it is sent.

    A retried job finds the row: `sent` means done; `pending` with attempts > 0 means a
    previous attempt may have reached Kommo, so the job looks there before sending again.
    """

    __tablename__ = "crm_deliveries"
    __table_args__ = (CheckConstraint("status IN ('pending', 'sent')", name="status"),)

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    idempotency_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    external_id: Mapped[int | None] = mapped_column(BigInteger)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CrmTask(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "crm_tasks"
    __table_args__ = (
        Index("ix_crm_tasks_org_lead", "organization_id", "lead_id"),
        Index(
            "ix_crm_tasks_org_status_complete_till", "organization_id", "status", "complete_till"
        ),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[int | None] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    task_type_id: Mapped[int | None] = mapped_column(Integer)
    responsible_user_id: Mapped[int | None] = mapped_column(BigInteger)
    complete_till: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")


class CrmCall(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "crm_calls"
    __table_args__ = (
        Index("ix_crm_calls_org_lead", "organization_id", "lead_id"),
        Index("ix_crm_calls_org_created_at", "organization_id", "created_at"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[str | None] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    phone: Mapped[str | None] = mapped_column(String(64))
    call_status: Mapped[int | None] = mapped_column(Integer)
    call_result: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(1000))
