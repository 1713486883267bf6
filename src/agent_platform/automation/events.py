"""The one vocabulary of everything that can start automation, whatever its source.

A Kommo webhook (automation.kommo_events), our own records (a task or call stored through the
API), the clock (automation.tick: silences, overdue tasks, schedules) and a person (a manual
start) all become an `AutomationEvent`; triggers name the `EventType` they wait for.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    LEAD_CREATED = "lead_created"
    LEAD_STATUS_CHANGED = "lead_status_changed"  # data: from/to status id, from/to pipeline id
    LEAD_RESPONSIBLE_CHANGED = "lead_responsible_changed"  # data: from/to user id
    LEAD_FIELD_CHANGED = "lead_field_changed"  # data: field_id, field_code, value, previous
    LEAD_TAG_ADDED = "lead_tag_added"  # data: tag
    MESSAGE_INCOMING = "message_incoming"  # data: text, channel
    MESSAGE_OUTGOING = "message_outgoing"  # a manager's message; data: text, channel
    LEAD_SILENT = "lead_silent"  # no reply from the lead for `minutes`
    MANAGER_SILENT = "manager_silent"  # no reply from a manager for `minutes`
    TASK_CREATED = "task_created"  # data: task_id, text
    TASK_OVERDUE = "task_overdue"  # data: task_id, text, due_at
    CALL_ADDED = "call_added"  # data: call_id, direction, duration
    SCHEDULE = "schedule"  # a cron schedule in the organization's time zone; no lead
    MANUAL = "manual"  # started by a person through the API
    SEQUENCE_STEP = "sequence_step"  # a sequence's step came due: its run's event, no trigger's


# What a trigger may wait for: every event but a sequence's own step.
TRIGGER_EVENTS = frozenset(EventType) - {EventType.SEQUENCE_STEP}


# Events that concern no lead: actions that need one cannot be chosen for them.
LEADLESS_EVENTS = frozenset({EventType.SCHEDULE})
# Chains longer than this are cut: an event caused by our action caused by our action …
MAX_CHAIN_DEPTH = 3


@dataclass(frozen=True)
class Origin:
    """What caused an event: none of our triggers (a person, a customer, Kommo), or the
    actions of `trigger_ids` (the whole chain), `depth` triggers deep."""

    trigger_ids: tuple[str, ...] = ()
    depth: int = 0

    def after(self, trigger_id: uuid.UUID | str) -> Origin:
        """The origin of what `trigger_id`'s actions cause, when it ran on this origin."""
        return Origin(trigger_ids=(*self.trigger_ids, str(trigger_id)), depth=self.depth + 1)

    def to_json(self) -> dict[str, Any]:
        return {"trigger_ids": list(self.trigger_ids), "depth": self.depth}

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> Origin:
        if not value:
            return cls()
        return cls(trigger_ids=tuple(value.get("trigger_ids", ())), depth=value.get("depth", 0))


@dataclass(frozen=True)
class AutomationEvent:
    """One thing that happened. `lead` holds the lead's facts as far as the source knew them
    (name, price, status_id, pipeline_id, responsible_user_id, tags, custom_fields keyed by
    field id and by code), `previous` the same facts before the change, when known."""

    type: EventType
    occurred_at: datetime
    connection_id: uuid.UUID | None = None
    lead_id: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    lead: dict[str, Any] | None = None
    previous: dict[str, Any] | None = None
    contact: dict[str, Any] | None = None
    origin: Origin = field(default_factory=Origin)
    # Unique per happening (Kommo's event key, the task id and due time …): a retried
    # dispatch of the same event finds the runs it recorded already.
    key: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "occurred_at": self.occurred_at.isoformat(),
            "connection_id": None if self.connection_id is None else str(self.connection_id),
            "lead_id": self.lead_id,
            "data": self.data,
            "lead": self.lead,
            "previous": self.previous,
            "contact": self.contact,
            "origin": self.origin.to_json(),
            "key": self.key,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AutomationEvent:
        connection_id = value.get("connection_id")
        return cls(
            type=EventType(value["type"]),
            occurred_at=datetime.fromisoformat(value["occurred_at"]),
            connection_id=None if connection_id is None else uuid.UUID(connection_id),
            lead_id=value.get("lead_id"),
            data=value.get("data") or {},
            lead=value.get("lead"),
            previous=value.get("previous"),
            contact=value.get("contact"),
            origin=Origin.from_json(value.get("origin")),
            key=value.get("key", ""),
        )
