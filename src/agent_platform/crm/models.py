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
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class ConnectionStatus(StrEnum):
    ACTIVE = "active"
    # Kommo refused our tokens for good (revoked, refresh token used up): an admin must connect
    # the account again; until then nothing calls Kommo for it.
    NEEDS_REAUTH = "needs_reauth"
    # The integration was uninstalled in Kommo (or switched off here).
    DISABLED = "disabled"
    # Kommo answered 403: the account or our integration is blocked there.
    BLOCKED = "blocked"


class ReplyChannel(StrEnum):
    """How the agent's reply reaches the customer (see crm.kommo.delivery)."""

    NOTE = "note"  # a note on the lead: a draft a manager sends (or not)
    CHATS = "chats"  # a message in the chat, through our Chats API (amojo) channel
    SALESBOT = "salesbot"  # the answer to a Salesbot widget_request, shown by the bot


class CrmConnection(IdMixin, TenantMixin, TimestampMixin, Base):
    """A Kommo account we act in. Tokens and secrets are stored encrypted (see kit.crypto)."""

    __tablename__ = "crm_connections"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'needs_reauth', 'disabled', 'blocked')", name="status"
        ),
        CheckConstraint("reply_channel IN ('note', 'chats', 'salesbot')", name="reply_channel"),
        # Connecting an account again updates its connection instead of adding a second one.
        Index(
            "uq_crm_connections_organization_account",
            "organization_id",
            "account_id",
            unique=True,
            postgresql_where=text("account_id IS NOT NULL"),
        ),
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
    # Why the status is not `active` (Kommo's words where it gave some), and since when.
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reply_channel: Mapped[str] = mapped_column(
        String(16), default=ReplyChannel.NOTE.value, server_default=ReplyChannel.NOTE.value
    )
    # The Chats API channel, for reply_channel "chats": the scope the account's channel was
    # connected under, the channel's secret (signs every request) and the id of the
    # channel's bot, which is the sender of our replies. The API's address defaults by
    # domain (amojo.kommo.com, or amojo.amocrm.ru for amoCRM accounts).
    chats_scope_id: Mapped[str | None] = mapped_column(String(255))
    chats_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    chats_bot_id: Mapped[str | None] = mapped_column(String(255))
    chats_api_url: Mapped[str | None] = mapped_column(String(500))


class InboxStatus(StrEnum):
    PENDING = "pending"  # a job is deferred to act on it
    HANDLED = "handled"
    # Kept, not acted on: every event no job answers. For now that is all but customers'
    # messages: lead, contact, task, talk and unsorted changes wait for the automation
    # engine, managers' messages for the human-takeover rules; unknown events stay here.
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
    # Kommo's id of what was sent when it is not a number (a Chats API message id).
    external_ref: Mapped[str | None] = mapped_column(String(255))
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
