"""A run of the log as the API shows it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from agent_platform.automation.models import AutomationRun


class RunOut(BaseModel):
    id: uuid.UUID
    kind: str
    status: str
    matched: bool
    error: str | None = Field(description="Why it failed or was skipped.")
    trigger_id: uuid.UUID | None
    sequence_id: uuid.UUID | None
    enrollment_id: uuid.UUID | None
    rule_id: uuid.UUID | None
    connection_id: uuid.UUID | None
    lead_id: int | None
    event_type: str
    event: dict[str, Any]
    trace: dict[str, Any] | None = Field(description="The engine's explanation of the match.")
    actions: list[dict[str, Any]] = Field(description="The actions to perform, as they were.")
    results: list[dict[str, Any]] = Field(
        description='Each action done: {"index", "type", "status", "detail", "at"}.'
    )
    chain_depth: int
    resume_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    duration_ms: int | None

    @classmethod
    def of(cls, run: AutomationRun) -> RunOut:
        return cls(
            id=run.id,
            kind=run.kind,
            status=run.status,
            matched=run.matched,
            error=run.error,
            trigger_id=run.trigger_id,
            sequence_id=run.sequence_id,
            enrollment_id=run.enrollment_id,
            rule_id=run.rule_id,
            connection_id=run.connection_id,
            lead_id=run.lead_id,
            event_type=run.event_type,
            event=run.event,
            trace=run.trace,
            actions=run.actions,
            results=run.results,
            chain_depth=run.chain_depth,
            resume_at=run.resume_at,
            created_at=run.created_at,
            finished_at=run.finished_at,
            duration_ms=run.duration_ms,
        )
