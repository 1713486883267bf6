"""The rule editor's form: what it posts, read into the triggers API's own input.

The editor's script keeps the condition tree and the actions as JSON in two hidden fields,
exactly as the API takes them; the other fields are plain inputs. A form that cannot become
that input (JSON that does not parse, a sample value of the wrong kind) is refused here with
the path of the offending part, like the service refuses a tree it cannot accept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from agent_platform.automation.dry_run import SampleEvent
from agent_platform.automation.events import EventType
from agent_platform.automation.models import Trigger
from agent_platform.automation.triggers.service import SILENCE_EVENTS
from agent_platform.kit.errors import AppError

# The sample event's inputs, each named `sample_<name>` in the form.
SAMPLE_INPUTS = (
    "lead_id",
    "lead_name",
    "lead_price",
    "lead_status_id",
    "lead_pipeline_id",
    "lead_responsible_user_id",
    "lead_tags",
    "lead_custom_fields",
    "previous_status_id",
    "from_status_id",
    "to_status_id",
    "event_tag",
    "minutes",
    "text",
    "channel",
    "contact_name",
    "contact_phone",
    "contact_email",
    "turns",
    "minutes_since_last_reply",
    "at",
)
# An event type's own parameters and the types that take them (the editor shows them then).
EVENT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "after_minutes": tuple(sorted(SILENCE_EVENTS)),
    "cron": (EventType.SCHEDULE.value,),
}


# Pydantic names the member of a union it tried (`lead.price.float`): not a place in the form.
_UNION_MEMBER = re.compile(r"^(int|float|str|bool|none|[a-z-]+\[.*\]|[a-z]+-[a-z-]+)$")


@dataclass(frozen=True)
class EditorError:
    """What is wrong, and where: a path as the API names it (`conditions.all[0].value`)."""

    path: str
    message: str

    @classmethod
    def of_app_error(cls, error: AppError) -> EditorError:
        details = error.details
        if isinstance(details, list) and details and isinstance(details[0], Mapping):
            first = details[0]
            return cls(str(first.get("path", "")), str(first.get("message", error.message)))
        return cls("", error.message)

    @classmethod
    def of_validation(cls, error: ValidationError, prefix: str = "") -> EditorError:
        first = error.errors(include_url=False)[0]
        where = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}"
            for part in first["loc"]
            if isinstance(part, int) or not _UNION_MEMBER.match(part)
        )
        return cls(f"{prefix}{where}".lstrip("."), first["msg"])


class EditorRefusedError(Exception):
    def __init__(self, error: EditorError) -> None:
        super().__init__(f"{error.path}: {error.message}")
        self.error = error


@dataclass(frozen=True)
class TriggerForm:
    """The editor's fields as text, as shown and as posted back."""

    name: str = ""
    agent_id: str = ""
    event_type: str = EventType.LEAD_STATUS_CHANGED.value
    after_minutes: str = ""
    cron: str = ""
    conditions: str = ""
    actions: str = "[]"
    priority: str = "0"
    max_runs_per_lead_per_day: str = ""
    enabled: bool = True
    sample: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_trigger(cls, trigger: Trigger) -> TriggerForm:
        event = trigger.event
        return cls(
            name=trigger.name,
            agent_id="" if trigger.agent_id is None else str(trigger.agent_id),
            event_type=trigger.event_type,
            after_minutes=str(event.get("after_minutes", "")),
            cron=str(event.get("cron", "")),
            conditions="" if trigger.conditions is None else json.dumps(trigger.conditions),
            actions=json.dumps(trigger.actions),
            priority=str(trigger.priority),
            max_runs_per_lead_per_day=(
                ""
                if trigger.max_runs_per_lead_per_day is None
                else str(trigger.max_runs_per_lead_per_day)
            ),
            enabled=trigger.enabled,
        )

    @classmethod
    def of_posted(cls, posted: Mapping[str, Any]) -> TriggerForm:
        def text(name: str, default: str = "") -> str:
            value = posted.get(name, default)
            return value if isinstance(value, str) else default

        return cls(
            name=text("name"),
            agent_id=text("agent_id"),
            event_type=text("event_type"),
            after_minutes=text("after_minutes"),
            cron=text("cron"),
            conditions=text("conditions"),
            actions=text("actions", "[]"),
            priority=text("priority", "0"),
            max_runs_per_lead_per_day=text("max_runs_per_lead_per_day"),
            enabled=text("enabled") in ("on", "true"),
            sample={name: text(f"sample_{name}") for name in SAMPLE_INPUTS},
        )

    def with_sample(self, sample: dict[str, str]) -> TriggerForm:
        return replace(self, sample=sample)

    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = {"type": self.event_type}
        if self.event_type in EVENT_PARAMETERS["after_minutes"]:
            event["after_minutes"] = _number(self.after_minutes)
        if self.event_type in EVENT_PARAMETERS["cron"]:
            event["cron"] = self.cron
        return event

    def trigger_body(self) -> dict[str, Any]:
        """The body the triggers API would be sent (TriggerIn / TriggerPatch)."""
        return {
            "name": self.name,
            "agent_id": self.agent_id or None,
            "event": self.event(),
            "conditions": _json(self.conditions, "conditions", empty=None),
            "actions": _json(self.actions, "actions", empty=[]),
            "priority": _number(self.priority) if self.priority.strip() else 0,
            "enabled": self.enabled,
            "max_runs_per_lead_per_day": _number(self.max_runs_per_lead_per_day),
        }

    def sample_event(self, zone: ZoneInfo) -> SampleEvent:
        """The sample as the dry run takes it; its time read in the organization's zone."""
        value = self.sample.get
        lead = _present(
            {
                "id": _number(value("lead_id", "")),
                "name": value("lead_name", "") or None,
                "price": _number(value("lead_price", "")),
                "status_id": _number(value("lead_status_id", "")),
                "pipeline_id": _number(value("lead_pipeline_id", "")),
                "responsible_user_id": _number(value("lead_responsible_user_id", "")),
                "tags": _items(value("lead_tags", "")) or None,
                "custom_fields": _custom_fields(value("lead_custom_fields", "")) or None,
            }
        )
        previous = _present({"status_id": _number(value("previous_status_id", ""))})
        contact = _present(
            {
                "name": value("contact_name", "") or None,
                "phone": value("contact_phone", "") or None,
                "email": value("contact_email", "") or None,
            }
        )
        data = _present(
            {
                "from_status_id": _number(value("from_status_id", "")),
                "to_status_id": _number(value("to_status_id", "")),
                "tag": value("event_tag", "") or None,
                "minutes": _number(value("minutes", "")),
                "text": value("text", "") or None,
                "channel": value("channel", "") or None,
            }
        )
        turns = _number(value("turns", ""))
        since_reply = _number(value("minutes_since_last_reply", ""))
        conversation = (
            None
            if turns is None and since_reply is None
            else _present({"turns": turns, "minutes_since_last_reply": since_reply})
        )
        raw: dict[str, Any] = {
            "type": self.event_type or None,
            "data": data,
            "lead": lead or None,
            "previous": previous or None,
            "contact": contact or None,
            "conversation": conversation,
            "at": _moment(value("at", ""), zone),
        }
        try:
            return SampleEvent.model_validate(raw)
        except ValidationError as error:
            raise EditorRefusedError(EditorError.of_validation(error, "sample")) from error


def _json(text: str, path: str, *, empty: Any) -> Any:
    if not text.strip():
        return empty
    try:
        return json.loads(text)
    except ValueError as error:
        raise EditorRefusedError(EditorError(path, "is not valid JSON")) from error


def _number(text: str) -> int | float | str | None:
    """A whole or decimal number; the text itself when it is neither (the schema then says
    what it should be), None when empty."""
    stripped = text.strip()
    if not stripped:
        return None
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        return stripped


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _custom_fields(text: str) -> dict[str, Any]:
    """`code=value` lines (or `id=value`); a numeric value becomes a number."""
    fields: dict[str, Any] = {}
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if separator and key.strip():
            fields[key.strip()] = _number(value) if value.strip() else None
    return fields


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _moment(text: str, zone: ZoneInfo) -> str | None:
    """A datetime-local input's value as an aware moment in the organization's zone."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()
