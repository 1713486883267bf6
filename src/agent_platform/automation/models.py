"""Automation's tables: rules, triggers, sequences and their enrollments, and the run log.

Condition trees and action lists are stored as JSON exactly as the API accepted them (after
validation by automation.engine and automation.actions), so what an admin built in the editor
is what is evaluated.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin


class AutomationRule(IdMixin, TenantMixin, TimestampMixin, Base):
    """A named condition tree that triggers and sequence steps refer to as `{"rule": id}`."""

    __tablename__ = "automation_rules"

    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONB)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")


class Trigger(IdMixin, TenantMixin, TimestampMixin, Base):
    """On an event, when the conditions hold, perform the actions."""

    __tablename__ = "automation_triggers"
    __table_args__ = (
        Index("ix_automation_triggers_lookup", "organization_id", "event_type", "enabled"),
    )

    # The agent whose Triggers tab shows it; None for an organization-wide trigger.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    # {"type": "lead_status_changed", ...the type's parameters (after_minutes, cron)}.
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # event["type"], as a column so that an event finds its triggers by index.
    event_type: Mapped[str] = mapped_column(String(40))
    conditions: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    max_runs_per_lead_per_day: Mapped[int | None] = mapped_column(Integer)


class Sequence(IdMixin, TenantMixin, TimestampMixin, Base):
    """Ordered steps, each a delay, conditions and actions; a lead is enrolled to walk them."""

    __tablename__ = "automation_sequences"

    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    # {"lead_replied": bool, "stages": [status ids], "won_or_lost": bool}
    stop_on: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # Raised on every edit of steps or stop_on; an enrollment keeps the version it started on.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"


OPEN_ENROLLMENT_STATUSES = (EnrollmentStatus.ACTIVE.value, EnrollmentStatus.PAUSED.value)


class Enrollment(IdMixin, TenantMixin, TimestampMixin, Base):
    """One lead walking one sequence. It carries a copy of the steps and stop conditions it
    started with, so editing the sequence never changes (or breaks) a walk under way."""

    __tablename__ = "automation_enrollments"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'paused', 'completed', 'stopped', 'failed')", name="status"
        ),
        # One open enrollment per lead and sequence; a finished one may be followed by another.
        Index(
            "uq_automation_enrollments_open",
            "sequence_id",
            "connection_id",
            "lead_id",
            unique=True,
            postgresql_where=text("status IN ('active', 'paused')"),
        ),
        Index("ix_automation_enrollments_lead", "organization_id", "connection_id", "lead_id"),
    )

    sequence_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automation_sequences.id", ondelete="CASCADE"), index=True
    )
    sequence_version: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    stop_on: Mapped[dict[str, Any]] = mapped_column(JSONB)
    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE")
    )
    lead_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=EnrollmentStatus.ACTIVE.value)
    # The index of the step that runs next (len(steps) once completed).
    current_step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_step_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The queue job that runs the next step: cancelled when the enrollment stops.
    next_job_id: Mapped[int | None] = mapped_column(BigInteger)
    stop_reason: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What enrolled the lead: {"trigger_id": ...} / {"api": true}, and the chain depth.
    origin: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")


class RunKind(StrEnum):
    TRIGGER = "trigger"
    SEQUENCE_STEP = "sequence_step"
    RULE = "rule"


class RunStatus(StrEnum):
    SKIPPED = "skipped"  # not matched, capped, or refused by loop protection: `error` says why
    RUNNING = "running"
    WAITING = "waiting"  # a `wait` action holds the rest of the actions until `resume_at`
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class AutomationRun(IdMixin, TenantMixin, TimestampMixin, Base):
    """One trigger firing, sequence step or rule evaluation: what came in, what matched and
    why (the engine's trace), what was done with what result."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        CheckConstraint("kind IN ('trigger', 'sequence_step', 'rule')", name="kind"),
        CheckConstraint(
            "status IN ('skipped', 'running', 'waiting', 'succeeded', 'failed')", name="status"
        ),
        Index("ix_automation_runs_listing", "organization_id", "created_at"),
        # Run caps count a trigger's runs for a lead since the start of the day.
        Index("ix_automation_runs_trigger_lead", "trigger_id", "lead_id", "created_at"),
        # A retried dispatch finds the run it already recorded for (trigger, event).
        Index("uq_automation_runs_dedupe_key", "dedupe_key", unique=True),
    )

    kind: Mapped[str] = mapped_column(String(16))
    trigger_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automation_triggers.id", ondelete="SET NULL")
    )
    sequence_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automation_sequences.id", ondelete="SET NULL"), index=True
    )
    enrollment_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automation_enrollments.id", ondelete="SET NULL")
    )
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("automation_rules.id", ondelete="SET NULL")
    )
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="SET NULL")
    )
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    event: Mapped[dict[str, Any]] = mapped_column(JSONB)
    matched: Mapped[bool] = mapped_column(Boolean)
    trace: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The actions to perform (a copy: editing the trigger does not change a run under way)
    # and, as each is done, its result: [{"index", "type", "status", "detail", "at"}].
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    next_action: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    chain_depth: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    resume_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[int | None] = mapped_column(Integer)


class LeadSnapshot(IdMixin, TenantMixin, TimestampMixin, Base):
    """The lead as the last event showed it: what `changed_from`, "field changed" and "tag
    added" compare with, since Kommo's webhooks carry only the new values."""

    __tablename__ = "automation_lead_snapshots"
    __table_args__ = (
        Index("uq_automation_lead_snapshots_lead", "connection_id", "lead_id", unique=True),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE")
    )
    lead_id: Mapped[int] = mapped_column(BigInteger)
    facts: Mapped[dict[str, Any]] = mapped_column(JSONB)


class ExpectedEcho(IdMixin, TenantMixin, TimestampMixin, Base):
    """A change our own action made in the CRM, waiting for Kommo's webhook about it: the event
    that webhook brings is marked as caused by the trigger (loop protection)."""

    __tablename__ = "automation_expected_echoes"
    __table_args__ = (
        Index("ix_automation_expected_echoes_lead", "connection_id", "lead_id", "event_type"),
    )

    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("crm_connections.id", ondelete="CASCADE")
    )
    lead_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    # What identifies the change in the event's data, e.g. {"to_status_id": 142}.
    match: Mapped[dict[str, Any]] = mapped_column(JSONB)
    # The origin the echoed event inherits: {"trigger_ids": [...], "depth": n}.
    origin: Mapped[dict[str, Any]] = mapped_column(JSONB)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
