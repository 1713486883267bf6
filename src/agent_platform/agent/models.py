"""An agent (the settings that answer a team's leads) and its versions (every save of them)."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
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


class AgentStatus(StrEnum):
    DRAFT = "draft"  # never published: nothing to answer with yet
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"  # deleted through the API: kept with its versions, never answers


class Agent(IdMixin, TenantMixin, TimestampMixin, Base):
    """The settings an agent answers with: its published version's, copied here on publishing
    (before the first publish, its latest save), so the reply flow reads one row.

    The columns are named as agent.schemas.AgentSettings names the settings. Scalars are
    columns, so the database checks their ranges; the structured settings (working hours,
    handoff rules, lists) are JSONB: they are always read and written whole, validated by
    the schema, and no query looks inside them. Their defaults are the schema's (a test
    holds the two together); a JSONB `{}` takes the schema's defaults when read.
    """

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'paused', 'archived')", name="status"),
        CheckConstraint("temperature >= 0 AND temperature <= 2", name="temperature"),
        CheckConstraint("debounce_seconds BETWEEN 0 AND 300", name="debounce_seconds"),
        CheckConstraint("takeover_pause_minutes >= 0", name="takeover_pause_minutes"),
        CheckConstraint("max_tokens >= 1", name="max_tokens"),
        CheckConstraint(
            "max_replies_per_conversation_per_day >= 1", name="max_replies_per_conversation_per_day"
        ),
    )

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, server_default="")
    instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    model: Mapped[str] = mapped_column(String(200))
    fallback_models: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'"))
    temperature: Mapped[float] = mapped_column(Float, default=0.3, server_default="0.3")
    max_tokens: Mapped[int | None] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(35), server_default="auto")
    tone: Mapped[str] = mapped_column(String(200), server_default="")
    working_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    stop_words: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'"))
    handoff: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'"))
    takeover_pause_minutes: Mapped[int] = mapped_column(Integer, server_default="60")
    debounce_seconds: Mapped[int] = mapped_column(Integer, server_default="0")
    max_replies_per_conversation_per_day: Mapped[int | None] = mapped_column(Integer)
    tools: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'"))
    active_stages: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, server_default=text("'[]'"))
    lead_fields: Mapped[list[int]] = mapped_column(JSONB, server_default=text("'[]'"))

    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.ACTIVE.value)
    # The version answering customers. use_alter: agents and agent_versions refer to each other.
    published_version_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True),
        ForeignKey("agent_versions.id", ondelete="SET NULL", use_alter=True),
    )
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str | None] = mapped_column(String(100))


class AgentVersion(IdMixin, TenantMixin, Base):
    """One save of an agent's settings, numbered 1, 2, … per agent. Never changed afterwards,
    so it has no updated_at."""

    __tablename__ = "agent_versions"
    __table_args__ = (
        UniqueConstraint("agent_id", "number"),
        CheckConstraint("number >= 1", name="number"),
    )

    agent_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE")
    )
    number: Mapped[int] = mapped_column(Integer)
    # AgentSettings as JSON: everything needed to answer as this version did.
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(String(500))
    # Who saved it: "api_key:<id>"; null for the platform itself (a migration, the demo).
    created_by: Mapped[str | None] = mapped_column(String(100))
    # The moment of the save, not of its transaction's start: saves are numbered one at a time
    # (under a lock), so newest-first by time is also by number.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False
    )
