"""Every call to a language model, and each organization's monthly budget for them."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin

DEFAULT_WARNING_RATIO = Decimal("0.80")


class CallStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    # Refused before any request was sent: the month's budget was spent.
    BUDGET_BLOCKED = "budget_blocked"


class LlmCall(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "llm_calls"
    __table_args__ = (
        CheckConstraint("status IN ('ok', 'error', 'budget_blocked')", name="status"),
        CheckConstraint("cost_source IN ('provider', 'price_table')", name="cost_source"),
        # The month's spend is summed before every call: with the cost in the index, that sum
        # is an index-only scan.
        Index(
            "ix_llm_calls_org_created_at",
            "organization_id",
            "created_at",
            postgresql_include=["cost_usd"],
        ),
    )

    # Kept when the agent or the conversation is deleted: the money was spent all the same.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="SET NULL")
    )
    conversation_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("conversations.id", ondelete="SET NULL")
    )
    model_requested: Mapped[str] = mapped_column(String(200))
    # The model that answered (a fallback, maybe) or was tried last; none when none was tried.
    model_used: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(16, 8))
    cost_source: Mapped[str | None] = mapped_column(String(16))
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    error_kind: Mapped[str | None] = mapped_column(String(32))


class LlmBudget(TimestampMixin, Base):
    """An organization's monthly spending limit; without a row (or a limit) there is none."""

    __tablename__ = "llm_budgets"
    __table_args__ = (
        CheckConstraint("monthly_limit_usd >= 0", name="monthly_limit_usd"),
        CheckConstraint("warning_ratio > 0 AND warning_ratio <= 1", name="warning_ratio"),
    )

    # One budget per organization, so the organization is its key.
    organization_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    monthly_limit_usd: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    warning_ratio: Mapped[Decimal] = mapped_column(
        Numeric(3, 2), default=DEFAULT_WARNING_RATIO, server_default="0.80"
    )
    # The month (its first day) whose warning was given: one warning per month, whichever
    # process sees the level crossed first.
    warned_month: Mapped[date | None] = mapped_column(Date)
