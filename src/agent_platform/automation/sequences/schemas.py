"""What the sequences API reads and answers. Steps and stop conditions are taken as any JSON
here and checked in the service (sequences.definition), whose errors name the bad part."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from agent_platform.automation.dry_run import MAX_BIGINT, SampleEvent
from agent_platform.automation.models import Enrollment
from agent_platform.automation.resources import EditableOut
from agent_platform.automation.rules.schemas import Name

STEPS_DESCRIPTION = (
    '1–50 steps: [{"name": "…", "delay": {"after_minutes": 60} or {"at": "10:00", '
    '"within_working_hours": true}, "conditions": tree or null, "actions": [...]}].'
)
STOP_ON_DESCRIPTION = '{"lead_replied": true, "stages": [status ids], "won_or_lost": true}'


class SequenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    agent_id: uuid.UUID | None = Field(
        default=None, description="The agent whose sequence it is; none: organization-wide."
    )
    enabled: bool = True
    steps: Any = Field(description=STEPS_DESCRIPTION)
    stop_on: Any = Field(default=None, description=STOP_ON_DESCRIPTION)


class SequencePatch(BaseModel):
    """Only the fields sent change; a change of steps or stop_on raises the version (running
    enrollments keep the steps they started with)."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    agent_id: uuid.UUID | None = None
    enabled: bool | None = None
    steps: Any = Field(default=None, description=STEPS_DESCRIPTION)
    stop_on: Any = Field(default=None, description=STOP_ON_DESCRIPTION)


class SequenceOut(EditableOut):
    agent_id: uuid.UUID | None
    steps: list[dict[str, Any]]
    stop_on: dict[str, Any]
    version: int


class SequenceDryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: SampleEvent = Field(default_factory=SampleEvent)


class StepDryRunOut(BaseModel):
    index: int
    name: str | None
    matched: bool
    trace: dict[str, Any]
    would_perform: list[dict[str, Any]] = Field(
        description="The step's actions with their templates filled in; empty when not matched."
    )


class SequenceDryRunOut(BaseModel):
    steps: list[StepDryRunOut]
    facts: dict[str, Any] = Field(description="The values the event gave each field.")


class EnrollmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID
    lead_id: Annotated[StrictInt, Field(ge=1, le=MAX_BIGINT)]


class EnrollmentOut(BaseModel):
    id: uuid.UUID
    sequence_id: uuid.UUID
    sequence_version: int
    connection_id: uuid.UUID
    lead_id: int
    status: str
    current_step: int = Field(description="The step that runs next (the step count once done).")
    next_step_at: datetime | None
    stop_reason: str | None
    ended_at: datetime | None
    origin: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, enrollment: Enrollment) -> EnrollmentOut:
        return cls(
            id=enrollment.id,
            sequence_id=enrollment.sequence_id,
            sequence_version=enrollment.sequence_version,
            connection_id=enrollment.connection_id,
            lead_id=enrollment.lead_id,
            status=enrollment.status,
            current_step=enrollment.current_step,
            next_step_at=enrollment.next_step_at,
            stop_reason=enrollment.stop_reason,
            ended_at=enrollment.ended_at,
            origin=enrollment.origin,
            created_at=enrollment.created_at,
            updated_at=enrollment.updated_at,
        )
