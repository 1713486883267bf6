"""An agent: the instructions and model that answer a team's leads."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from sqlalchemy import CheckConstraint, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class AgentStatus(StrEnum):
    DRAFT = "draft"
    ACTIVE = "active"
    PAUSED = "paused"


class Agent(IdMixin, TenantMixin, TimestampMixin, Base):
    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'active', 'paused')", name="status"),
        CheckConstraint("temperature >= 0 AND temperature <= 2", name="temperature"),
    )

    name: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="", server_default="")
    model: Mapped[str] = mapped_column(String(200))
    temperature: Mapped[Decimal] = mapped_column(
        Numeric(3, 2), default=Decimal("0.3"), server_default="0.3"
    )
    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.ACTIVE.value)
