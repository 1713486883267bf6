"""What the triggers API reads and answers. The event, conditions and actions are taken as any
JSON here and checked in the service (engine, actions), whose errors name the bad part's path."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from agent_platform.automation.dry_run import MAX_BIGINT, SampleEvent
from agent_platform.automation.resources import EditableOut
from agent_platform.automation.rules.schemas import CONDITIONS_DESCRIPTION, DryRunOut, Name

EVENT_DESCRIPTION = (
    '{"type": "lead_status_changed"}; lead_silent and manager_silent take "after_minutes" '
    '(1–43200), schedule takes "cron" (five fields, in the organization\'s time zone).'
)
ACTIONS_DESCRIPTION = 'A list of 1–20 actions, each {"type": ..., its parameters}.'
Priority = Annotated[StrictInt, Field(ge=-1000, le=1000)]
RunCap = Annotated[StrictInt, Field(ge=1, le=10_000)]


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    agent_id: uuid.UUID | None = Field(
        default=None, description="The agent whose trigger it is; none: organization-wide."
    )
    event: Any = Field(description=EVENT_DESCRIPTION)
    conditions: Any = Field(default=None, description=f"None: always. {CONDITIONS_DESCRIPTION}")
    actions: Any = Field(description=ACTIONS_DESCRIPTION)
    priority: Priority = Field(default=0, description="Higher runs first.")
    enabled: bool = True
    max_runs_per_lead_per_day: RunCap | None = None


class TriggerPatch(BaseModel):
    """Only the fields sent change; `conditions` or `max_runs_per_lead_per_day` sent as null
    remove them."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    agent_id: uuid.UUID | None = None
    event: Any = Field(default=None, description=EVENT_DESCRIPTION)
    conditions: Any = Field(default=None, description=CONDITIONS_DESCRIPTION)
    actions: Any = Field(default=None, description=ACTIONS_DESCRIPTION)
    priority: Priority | None = None
    enabled: bool | None = None
    max_runs_per_lead_per_day: RunCap | None = None


class TriggerOut(EditableOut):
    agent_id: uuid.UUID | None
    event: dict[str, Any]
    event_type: str
    conditions: dict[str, Any] | None
    actions: list[dict[str, Any]]
    priority: int
    max_runs_per_lead_per_day: int | None


class TriggerDryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: SampleEvent = Field(default_factory=SampleEvent)


class TriggerDryRunOut(DryRunOut):
    would_perform: list[dict[str, Any]] = Field(
        description="The actions with their templates filled in; empty when not matched."
    )


class ManualRunIn(BaseModel):
    """The lead to run the trigger for."""

    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID
    lead_id: Annotated[StrictInt, Field(ge=1, le=MAX_BIGINT)]


class ManualRunOut(BaseModel):
    job_id: int = Field(description="The queue job that dispatches the manual event.")


class WebhookSecretOut(BaseModel):
    secret: str = Field(
        description="The key of the HMAC-SHA256 in X-Agent-Platform-Signature of webhook calls."
    )
