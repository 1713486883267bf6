"""Kommo's webhook events as automation events (pure: the caller reads and keeps snapshots).

Kommo's lead webhooks carry the lead as it is now, never what changed: a status or
responsible webhook adds the old value, but a changed custom field or a new tag shows only in
the difference with the lead as we last saw it (the snapshot, automation.snapshots). So a
lead webhook gives its own event (created, status changed, responsible changed) and one
event per tag added and per custom field changed since the snapshot; an `update` webhook
gives only the latter. Without a snapshot there is nothing to compare with: no such events.

The lead's facts have one shape whatever the source (lead_facts.py reads the same from
Kommo's API): {"id", "name", "price", "status_id", "pipeline_id", "responsible_user_id",
"tags": [names], "custom_fields": {"<field id>": value, "<field code>": value}}. A field's
value is its only value, or the list of its values; numbers written as text are numbers,
since webhooks send every value as text while the API sends numbers.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.crm.kommo.webhooks import EventFamily, KommoEvent

_NUMBER = re.compile(r"^-?(0|[1-9]\d{0,17})(\.\d+)?$")

# Which automation events a Kommo event may give: the webhook's gate asks whether anything
# waits for one of them before any work is queued.
_LEAD_DIFFERENCES = (EventType.LEAD_TAG_ADDED, EventType.LEAD_FIELD_CHANGED)
POSSIBLE_EVENTS: dict[tuple[EventFamily, str], tuple[EventType, ...]] = {
    (EventFamily.LEADS, "add"): (EventType.LEAD_CREATED,),
    (EventFamily.LEADS, "update"): _LEAD_DIFFERENCES,
    (EventFamily.LEADS, "status"): (EventType.LEAD_STATUS_CHANGED, *_LEAD_DIFFERENCES),
    (EventFamily.LEADS, "responsible"): (EventType.LEAD_RESPONSIBLE_CHANGED, *_LEAD_DIFFERENCES),
}


@dataclass(frozen=True)
class FieldChange:
    field_id: int
    field_code: str | None
    value: Any
    previous: Any


def possible_events(event: KommoEvent) -> tuple[EventType, ...]:
    """The automation event types `event` may turn into (none: automation ignores it)."""
    if event.message is not None:
        # An outgoing message may be our own reply's echo: agent.manager_messages tells a
        # manager's from it and raises message_outgoing itself (manager_message_event).
        if event.message.entity_type != "leads" or not event.message.is_from_customer:
            return ()
        return (EventType.MESSAGE_INCOMING,)
    return POSSIBLE_EVENTS.get((event.family, event.action), ())


def concerned_lead(event: KommoEvent) -> int | None:
    """The lead the event concerns, when automation reads the event at all."""
    if not possible_events(event):
        return None
    return event.entity_id if event.entity_type == "leads" else None


def lead_facts_of(event: KommoEvent) -> dict[str, Any] | None:
    """The lead's facts a lead webhook carries; None for other events."""
    if event.family is not EventFamily.LEADS or event.entity_id is None:
        return None
    data = event.data
    tags = data.get("tags")
    return {
        "id": event.entity_id,
        "name": data.get("name") if isinstance(data.get("name"), str) else "",
        "price": _number(data.get("price")),
        "status_id": _number(data.get("status_id")),
        "pipeline_id": _number(data.get("pipeline_id")),
        "responsible_user_id": _number(data.get("responsible_user_id")),
        "tags": [
            tag["name"]
            for tag in (tags if isinstance(tags, list) else [])
            if isinstance(tag, dict) and isinstance(tag.get("name"), str)
        ],
        "custom_fields": custom_field_facts(
            (field.field_id, field.code, [value.value for value in field.values])
            for field in event.custom_fields
        ),
    }


def custom_field_facts(
    fields: Iterable[tuple[int | None, str | None, list[Any]]],
) -> dict[str, Any]:
    """{"<id>": value, "<code>": value} from (id, code, values) of each field."""
    facts: dict[str, Any] = {}
    for field_id, code, values in fields:
        value = field_value([v for v in values if v is not None])
        if field_id is not None:
            facts[str(field_id)] = value
        if code:
            facts[code] = value
    return facts


def field_value(values: list[Any]) -> Any:
    normalized = [_number(value) if isinstance(value, str) else value for value in values]
    if not normalized:
        return None
    return normalized[0] if len(normalized) == 1 else normalized


def tags_added(previous: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    before = set(previous.get("tags") or ())
    return [tag for tag in current.get("tags") or () if tag not in before]


def fields_changed(
    previous: Mapping[str, Any], current: Mapping[str, Any], codes: Mapping[int, str | None]
) -> list[FieldChange]:
    """Fields whose value differs, by id (a field left empty shows as missing: None now)."""
    before = previous.get("custom_fields") or {}
    now = current.get("custom_fields") or {}
    ids = sorted(
        {int(key) for key in (*before, *now) if key.isascii() and key.isdigit()},
    )
    return [
        FieldChange(
            field_id, codes.get(field_id), now.get(str(field_id)), before.get(str(field_id))
        )
        for field_id in ids
        if now.get(str(field_id)) != before.get(str(field_id))
    ]


def automation_events(
    event: KommoEvent,
    *,
    connection_id: uuid.UUID,
    snapshot: Mapping[str, Any] | None,
    occurred_at: datetime,
) -> list[AutomationEvent]:
    """The automation events of one Kommo event, given the lead's snapshot before it."""
    if event.message is not None:
        return _message_events(event, connection_id, occurred_at)
    kinds = possible_events(event)
    lead = lead_facts_of(event)
    if not kinds or lead is None:
        return []
    key = event_key(event)
    previous = dict(snapshot) if snapshot is not None else None

    def make(
        kind: EventType,
        data: dict[str, Any],
        suffix: str = "",
        previous: dict[str, Any] | None = previous,
    ) -> AutomationEvent:
        return AutomationEvent(
            type=kind,
            occurred_at=occurred_at,
            connection_id=connection_id,
            lead_id=lead["id"],
            data=data,
            lead=lead,
            previous=previous,
            key=key + suffix,
        )

    events: list[AutomationEvent] = []
    if event.action == "add":
        return [make(EventType.LEAD_CREATED, {}, previous=None)]
    if event.action == "status":
        before = previous or {}
        data = {
            "from_status_id": _number(event.data.get("old_status_id")) or before.get("status_id"),
            "to_status_id": lead["status_id"],
            "from_pipeline_id": _number(event.data.get("old_pipeline_id"))
            or before.get("pipeline_id"),
            "to_pipeline_id": lead["pipeline_id"],
        }
        events.append(
            make(
                EventType.LEAD_STATUS_CHANGED,
                data,
                previous=previous
                or lead
                | {"status_id": data["from_status_id"], "pipeline_id": data["from_pipeline_id"]},
            )
        )
    if event.action == "responsible":
        before = previous or {}
        old = _number(event.data.get("old_responsible_user_id")) or before.get(
            "responsible_user_id"
        )
        events.append(
            make(
                EventType.LEAD_RESPONSIBLE_CHANGED,
                {"from_user_id": old, "to_user_id": lead["responsible_user_id"]},
                previous=previous or lead | {"responsible_user_id": old},
            )
        )
    if previous is None:
        return events
    for tag in tags_added(previous, lead):
        events.append(make(EventType.LEAD_TAG_ADDED, {"tag": tag}, f":tag:{_digest(tag, 16)}"))
    codes = {field.field_id: field.code for field in event.custom_fields if field.field_id}
    for change in fields_changed(previous, lead, codes):
        events.append(
            make(
                EventType.LEAD_FIELD_CHANGED,
                {
                    "field": change.field_code or str(change.field_id),
                    "field_id": change.field_id,
                    "field_code": change.field_code,
                    "value": change.value,
                    "previous": change.previous,
                },
                f":field:{change.field_id}",
            )
        )
    return events


def _message_events(
    event: KommoEvent, connection_id: uuid.UUID, occurred_at: datetime
) -> list[AutomationEvent]:
    kinds = possible_events(event)
    if event.message is None or not kinds:
        return []
    return [_message_event(event, kinds[0], connection_id, occurred_at)]


def manager_message_event(
    event: KommoEvent, connection_id: uuid.UUID, occurred_at: datetime
) -> AutomationEvent | None:
    """The message_outgoing event of a message agent.manager_messages found a manager's."""
    if event.message is None or event.message.entity_type != "leads":
        return None
    return _message_event(event, EventType.MESSAGE_OUTGOING, connection_id, occurred_at)


def _message_event(
    event: KommoEvent, kind: EventType, connection_id: uuid.UUID, occurred_at: datetime
) -> AutomationEvent:
    message = event.message
    assert message is not None
    contact: dict[str, Any] | None = None
    if message.contact_id is not None:
        contact = {"id": message.contact_id}
        if message.is_from_customer and message.author_name:
            contact["name"] = message.author_name
    origin = event.data.get("origin")
    return AutomationEvent(
        type=kind,
        occurred_at=occurred_at,
        connection_id=connection_id,
        lead_id=message.entity_id,
        data={
            "text": message.text,
            "channel": origin if isinstance(origin, str) and origin else "chat",
            "message_id": message.message_id,
        },
        contact=contact,
        key=event_key(event),
    )


def event_key(event: KommoEvent) -> str:
    """Short and unique per Kommo event (its dedupe key may be long)."""
    return f"kommo:{_digest(event.dedupe_key, 40)}"


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _number(value: Any) -> Any:
    """A number written as text, as a number; anything else as it is."""
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    return value
