"""A conversation per lead and connection, and its messages."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class Conversation(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        CheckConstraint("channel IN ('kommo', 'api')", name="channel"),
        CheckConstraint(
            "(channel = 'kommo') = (connection_id IS NOT NULL)", name="connection_of_channel"
        ),
        UniqueConstraint(
            "connection_id", "entity_type", "entity_id", name="uq_conversations_entity"
        ),
        Index("ix_conversations_org_last_message_at", "organization_id", "last_message_at"),
        # The dashboard's handoffs of a day and of 7 days.
        Index("ix_conversations_org_handed_off_at", "organization_id", "handed_off_at"),
    )

    # None for the chat API's conversations (channel "api"): no CRM behind them.
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(16), default="kommo", server_default="kommo")
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    talk_id: Mapped[int | None] = mapped_column(BigInteger)
    chat_id: Mapped[str | None] = mapped_column(String(100))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What the reply gate remembers between messages (agent.runtime.reply_gate).
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stop_reason: Mapped[str | None] = mapped_column(Text)
    handed_off_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handoff_reason: Mapped[str | None] = mapped_column(Text)
    agent_paused_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_manager_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    out_of_hours_message_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    consecutive_errors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Older turns condensed so the context fits the model; messages up to `summarized_until`.
    summary: Mapped[str | None] = mapped_column(Text)
    summarized_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Message(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'assistant', 'manager', 'system', 'tool')", name="role"),
        Index("ix_messages_conversation_created_at", "conversation_id", "created_at"),
        # The dashboard's figures read an organization's messages of a window: index-only.
        Index(
            "ix_messages_org_created_at",
            "organization_id",
            "created_at",
            postgresql_include=["conversation_id", "role"],
        ),
        Index(
            "uq_messages_user_inbox_event",
            "inbox_event_id",
            unique=True,
            postgresql_where=text("role = 'user'"),
        ),
    )

    conversation_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # One customer message per inbox event: a redelivered job finds it instead of adding another.
    inbox_event_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("inbox_events.id", ondelete="SET NULL")
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(200))
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    # The agent version that wrote an assistant message (agents.published_version_id then).
    agent_version_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agent_versions.id", ondelete="SET NULL")
    )
    # An assistant message's function calls as the model made them (OpenAI shape), and for a
    # "tool" message the call it answers.
    tool_calls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    tool_call_id: Mapped[str | None] = mapped_column(String(100))
