"""Dry runs: a sample event as the API takes it, the facts it gives, and what actions would do.

The editor's "test" button sends an event shaped like the ones Kommo brings; it becomes the
same `AutomationEvent` and the same facts (automation.facts) a real event would, so a dry run
evaluates exactly what a real run would. Nothing here writes or sends anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from agent_platform.automation.engine import Facts
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.facts import ConversationFacts, facts_for
from agent_platform.automation.templates import render

# Kommo's ids fit in PostgreSQL's bigint; so must a sample's.
MAX_BIGINT = 2**63 - 1
SampleId = Annotated[StrictInt, Field(ge=1, le=MAX_BIGINT)]
SampleNumber = Annotated[float, Field(allow_inf_nan=False)] | StrictInt
SampleText = Annotated[str, Field(max_length=10_000)]
# Values of custom fields and of the event's data: scalars or short lists of them.
SampleScalar = StrictInt | Annotated[float, Field(allow_inf_nan=False)] | bool | SampleText | None
SampleValue = SampleScalar | Annotated[list[SampleScalar], Field(max_length=100)]
SampleMapping = Annotated[
    dict[Annotated[str, Field(max_length=200)], SampleValue], Field(max_length=100)
]


class SampleLead(BaseModel):
    """The lead as a Kommo event shows it."""

    model_config = ConfigDict(extra="forbid")

    id: SampleId | None = None
    name: SampleText | None = None
    price: SampleNumber | None = None
    status_id: SampleId | None = None
    pipeline_id: SampleId | None = None
    responsible_user_id: SampleId | None = None
    tags: Annotated[list[Annotated[str, Field(max_length=100)]], Field(max_length=100)] = []
    custom_fields: SampleMapping = Field(
        default={}, description="Values keyed by the field's id and/or code."
    )


class SampleContact(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: SampleId | None = None
    name: SampleText | None = None
    phone: SampleText | None = None
    email: SampleText | None = None


class SampleConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: Annotated[StrictInt, Field(ge=0, le=1_000_000)] = 0
    minutes_since_last_reply: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None


class SampleEvent(BaseModel):
    """An event to evaluate against, as if it had just happened."""

    model_config = ConfigDict(extra="forbid")

    type: EventType | None = Field(
        default=None,
        description="The event's type; a trigger's own by default, else `manual`.",
    )
    data: SampleMapping = Field(
        default={},
        description="The event's own values: from_status_id, to_status_id, tag, text, channel…",
    )
    lead: SampleLead | None = None
    previous: SampleLead | None = Field(
        default=None, description="The lead before the change (for changed_to/changed_from)."
    )
    contact: SampleContact | None = None
    at: AwareDatetime | None = Field(default=None, description="When it happened; now by default.")
    conversation: SampleConversation | None = None

    def event(self, default_type: EventType) -> AutomationEvent:
        lead = None if self.lead is None else self.lead.model_dump(exclude_none=True)
        previous = None if self.previous is None else self.previous.model_dump(exclude_none=True)
        contact = None if self.contact is None else self.contact.model_dump(exclude_none=True)
        return AutomationEvent(
            type=self.type or default_type,
            occurred_at=self.at or datetime.now(UTC),
            lead_id=None if self.lead is None else self.lead.id,
            data=dict(self.data),
            lead=lead,
            previous=previous,
            contact=contact,
            key=f"dry-run:{uuid.uuid4()}",
        )

    def facts(self, event: AutomationEvent, zone: ZoneInfo) -> Facts:
        conversation = (
            None
            if self.conversation is None
            else ConversationFacts(
                turns=self.conversation.turns,
                minutes_since_last_reply=self.conversation.minutes_since_last_reply,
            )
        )
        return facts_for(event, zone=zone, now=event.occurred_at, conversation=conversation)


# The fields of each action type that are templates, rendered with the event's facts.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "send_message": ("text",),
    "create_task": ("text",),
    "add_note": ("text",),
    "set_field": ("value",),
}


def rendered_action(action: Mapping[str, Any], facts: Mapping[str, Any]) -> dict[str, Any]:
    """The stored action as it would be performed on these facts: its templates filled in."""
    shown = dict(action)
    for name in TEMPLATE_FIELDS.get(str(action.get("type")), ()):
        if isinstance(shown.get(name), str):
            shown[name] = render(shown[name], facts)
    payload = shown.get("payload")
    if action.get("type") == "webhook" and isinstance(payload, dict):
        shown["payload"] = {
            key: render(value, facts) if isinstance(value, str) else value
            for key, value in payload.items()
        }
    return shown
