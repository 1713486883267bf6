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
    # Our webhook in the account (crm.kommo.webhook_subscription): the address Kommo sends the
    # account's events to, when Kommo confirmed the subscription (none while it is pending or
    # after the account was disconnected), and why the last attempt to subscribe or to remove
    # it failed.
    webhook_destination: Mapped[str | None] = mapped_column(String(1000))
    webhook_subscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    webhook_error: Mapped[str | None] = mapped_column(Text)


class InboxStatus(StrEnum):
    PENDING = "pending"  # a job is deferred to act on it
    HANDLED = "handled"
    # Kept, not acted on: every event no job answers. Customers' and managers' messages get
    # a job, and task changes are mirrored; lead, contact, talk and unsorted changes wait for
    # the automation engine; unknown events stay here.
    IGNORED = "ignored"
    FAILED = "failed"


# The `error` of a customer's message ignored because its connection was out of service when
# the message came (agent.service); reconnecting may answer it (crm.kommo.missed_messages).
IGNORED_WHILE_INACTIVE = "connection inactive"


class InboxEvent(IdMixin, TenantMixin, TimestampMixin, Base):
    """A webhook as received, stored before any work so nothing is lost and nothing repeats."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key", name="uq_inbox_events_source_dedupe_key"),
        CheckConstraint("status IN ('pending', 'handled', 'ignored', 'failed')", name="status"),
        Index("ix_inbox_events_status_received_at", "status", "received_at"),
        # The dashboard's webhook events of the last 24 hours.
        Index("ix_inbox_events_org_received_at", "organization_id", "received_at"),
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
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent')", name="status"),
        # The dashboard's replies sent by day.
        Index(
            "ix_crm_deliveries_org_sent_at",
            "organization_id",
            "sent_at",
            postgresql_where=text("status = 'sent'"),
        ),
    )

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


class SyncStatus(StrEnum):
    """Whether Kommo has what the platform asked of a task or call."""

    PENDING = "pending"  # a job is deferred to push it
    SYNCED = "synced"
    FAILED = "failed"  # Kommo refused it (or it could not be sent): `sync_error` says why


class TaskSource(StrEnum):
    PLATFORM = "platform"  # created through our API, pushed to Kommo
    KOMMO = "kommo"  # created in Kommo, mirrored from its webhooks


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    DELETED = "deleted"  # deleted in Kommo; the row stays as a record of it


class CrmTask(IdMixin, TenantMixin, TimestampMixin, Base):
    """A Kommo task the platform created, or one Kommo told us about."""

    __tablename__ = "crm_tasks"
    __table_args__ = (
        CheckConstraint("source IN ('platform', 'kommo')", name="source"),
        CheckConstraint("status IN ('open', 'completed', 'deleted')", name="status"),
        CheckConstraint("sync_status IN ('pending', 'synced', 'failed')", name="sync_status"),
        Index("ix_crm_tasks_org_entity", "organization_id", "entity_type", "entity_id"),
        Index(
            "ix_crm_tasks_org_status_complete_till", "organization_id", "status", "complete_till"
        ),
        Index("ix_crm_tasks_org_created_at_id", "organization_id", "created_at", "id"),
        # One row per Kommo task: webhooks about it update that row.
        Index(
            "uq_crm_tasks_connection_external_id",
            "connection_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(
        String(16), default=TaskSource.PLATFORM.value, server_default=TaskSource.PLATFORM.value
    )
    # The lead, contact, company or customer the task is set on (Kommo's plural names).
    entity_type: Mapped[str | None] = mapped_column(String(16))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[int | None] = mapped_column(BigInteger)  # Kommo's task id
    text: Mapped[str] = mapped_column(Text)
    task_type_id: Mapped[int | None] = mapped_column(Integer)
    responsible_user_id: Mapped[int | None] = mapped_column(BigInteger)
    complete_till: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(
        String(16), default=TaskStatus.OPEN.value, server_default=TaskStatus.OPEN.value
    )
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result_text: Mapped[str | None] = mapped_column(Text)
    sync_status: Mapped[str] = mapped_column(
        String(16), default=SyncStatus.PENDING.value, server_default=SyncStatus.PENDING.value
    )
    sync_error: Mapped[str | None] = mapped_column(Text)
    # When Kommo last changed the task, as its webhooks say: news older than this is stale
    # (Kommo does not promise to deliver webhooks in order).
    kommo_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CrmCall(IdMixin, TenantMixin, TimestampMixin, Base):
    """A call the platform logged in Kommo (`POST /api/v4/calls`).

    `uniq` is the call's idempotency key, Kommo's own field: kept here before the call is
    sent, it is how a retried job finds the call an earlier attempt logged.
    """

    __tablename__ = "crm_calls"
    __table_args__ = (
        Index("ix_crm_calls_org_lead", "organization_id", "lead_id"),
        Index("ix_crm_calls_org_created_at", "organization_id", "created_at"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        CheckConstraint("sync_status IN ('pending', 'synced', 'failed')", name="sync_status"),
        UniqueConstraint("connection_id", "uniq", name="uq_crm_calls_connection_uniq"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE"), index=True
    )
    # The lead the call is about: the one it was logged for, else the lead Kommo filed it on.
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    # The card Kommo filed the call on (it chooses by the phone number): a lead, contact or
    # company.
    entity_type: Mapped[str | None] = mapped_column(String(16))
    entity_id: Mapped[int | None] = mapped_column(BigInteger)
    external_id: Mapped[int | None] = mapped_column(BigInteger)  # Kommo's id of the call
    uniq: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(16))
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    source: Mapped[str] = mapped_column(String(255))  # Kommo's call source, e.g. the telephony
    phone: Mapped[str | None] = mapped_column(String(64))
    call_status: Mapped[int | None] = mapped_column(Integer)
    call_result: Mapped[str | None] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(1000))
    responsible_user_id: Mapped[int | None] = mapped_column(BigInteger)
    sync_status: Mapped[str] = mapped_column(
        String(16), default=SyncStatus.PENDING.value, server_default=SyncStatus.PENDING.value
    )
    sync_error: Mapped[str | None] = mapped_column(Text)
    # Attempts that may have reached Kommo: from the second on, Kommo is searched first.
    push_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
