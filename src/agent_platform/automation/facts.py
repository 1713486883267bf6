"""The facts a condition sees and a template fills in, gathered from one event.

Keys are the field names of automation.fields ("lead.price", "time.hour", …). A value the
event does not carry is left out: conditions see it as empty, templates as "".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.working_hours import WorkingHours, is_open
from agent_platform.automation.engine import Facts
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.fields import CUSTOM_FIELD_PREFIX


@dataclass(frozen=True)
class ConversationFacts:
    turns: int
    minutes_since_last_reply: float | None


# event.<name> ← event.data[<name>], where the event's type carries it.
_EVENT_DATA_FIELDS = (
    "from_status_id",
    "to_status_id",
    "from_pipeline_id",
    "to_pipeline_id",
    "from_user_id",
    "to_user_id",
    "tag",
    "minutes",
)
_LEAD_FIELDS = ("price", "status_id", "pipeline_id", "responsible_user_id", "name")
_CONTACT_FIELDS = ("id", "name", "phone", "email")
_MESSAGE_EVENTS = frozenset({EventType.MESSAGE_INCOMING, EventType.MESSAGE_OUTGOING})
_TASK_EVENTS = frozenset({EventType.TASK_CREATED, EventType.TASK_OVERDUE})


def facts_for(
    event: AutomationEvent,
    *,
    zone: ZoneInfo,
    now: datetime,
    working_hours: WorkingHours | None = None,
    conversation: ConversationFacts | None = None,
) -> Facts:
    """The facts of `event` at `now` (an aware datetime), times read in `zone`, the
    organization's time zone. Without working hours every moment is within them."""
    current: dict[str, Any] = {"event.type": event.type.value}
    data = event.data
    for name in _EVENT_DATA_FIELDS:
        _put(current, f"event.{name}", data.get(name))
    if event.type is EventType.LEAD_FIELD_CHANGED:
        code, field_id = data.get("field_code"), data.get("field_id")
        _put(current, "event.field", code or (None if field_id is None else str(field_id)))
    if event.type in _TASK_EVENTS:
        _put(current, "event.task_text", data.get("text"))
    if event.type in _MESSAGE_EVENTS:
        _put(current, "message.text", data.get("text"))
        _put(current, "message.channel", data.get("channel"))

    current.update(_lead_facts(event.lead))
    _put(current, "lead.id", event.lead_id)
    for name in _CONTACT_FIELDS:
        _put(current, f"contact.{name}", (event.contact or {}).get(name))

    local = now.astimezone(zone)
    current["time.weekday"] = local.isoweekday()
    current["time.hour"] = local.hour
    current["time.within_working_hours"] = working_hours is None or is_open(working_hours, now)

    if conversation is not None:
        current["conversation.turns"] = conversation.turns
        _put(
            current,
            "conversation.minutes_since_last_reply",
            conversation.minutes_since_last_reply,
        )
    return Facts(current=current, previous=_lead_facts(event.previous))


def _lead_facts(lead: Mapping[str, Any] | None) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    if not lead:
        return facts
    _put(facts, "lead.id", lead.get("id"))
    for name in _LEAD_FIELDS:
        _put(facts, f"lead.{name}", lead.get(name))
    tags = lead.get("tags")
    if tags is not None:
        # Kommo lists tags as {"id", "name"} objects; conditions compare their names.
        facts["lead.tags"] = [tag.get("name") if isinstance(tag, Mapping) else tag for tag in tags]
    for key, value in (lead.get("custom_fields") or {}).items():
        _put(facts, f"{CUSTOM_FIELD_PREFIX}{key}", value)
    return facts


def _put(facts: dict[str, Any], name: str, value: object) -> None:
    if value is not None:
        facts[name] = value
