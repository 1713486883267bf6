"""The facts an event gives conditions and templates: the event's data under event.*, the lead
now and before, the contact, the message, the time in the organization's zone and working
hours, and the conversation."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.working_hours import OpeningInterval, WorkingHours
from agent_platform.automation.engine import evaluate, parse_condition
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.facts import ConversationFacts, facts_for

BERLIN = ZoneInfo("Europe/Berlin")
# Monday 2025-03-03, 08:30 UTC = 09:30 in Berlin.
MONDAY_MORNING = datetime(2025, 3, 3, 8, 30, tzinfo=UTC)
OFFICE_HOURS = WorkingHours(
    timezone=BERLIN,
    weekly={day: (OpeningInterval.parse("09:00", "18:00"),) for day in ("mon", "tue", "wed")},
)


def event(type_: EventType, **fields: Any) -> AutomationEvent:
    return AutomationEvent(type=type_, occurred_at=MONDAY_MORNING, **fields)


def test_a_status_change_gives_the_event_the_lead_now_and_before_and_the_contact() -> None:
    facts = facts_for(
        event(
            EventType.LEAD_STATUS_CHANGED,
            lead_id=7,
            data={
                "from_status_id": 10,
                "to_status_id": 142,
                "from_pipeline_id": 1,
                "to_pipeline_id": 1,
            },
            lead={
                "name": "Big deal",
                "price": 5000,
                "status_id": 142,
                "pipeline_id": 1,
                "responsible_user_id": 3,
                "tags": [{"id": 1, "name": "vip"}, "new"],
                "custom_fields": {"555": "Berlin", "CITY": "Berlin"},
            },
            previous={"status_id": 10, "price": 5000, "tags": ["new"]},
            contact={"id": 9, "name": "Anna", "phone": "+4930123", "email": "anna@example.com"},
        ),
        zone=BERLIN,
        now=MONDAY_MORNING,
    )
    assert facts.current == {
        "event.type": "lead_status_changed",
        "event.from_status_id": 10,
        "event.to_status_id": 142,
        "event.from_pipeline_id": 1,
        "event.to_pipeline_id": 1,
        "lead.id": 7,
        "lead.name": "Big deal",
        "lead.price": 5000,
        "lead.status_id": 142,
        "lead.pipeline_id": 1,
        "lead.responsible_user_id": 3,
        "lead.tags": ["vip", "new"],
        "lead.custom_fields.555": "Berlin",
        "lead.custom_fields.CITY": "Berlin",
        "contact.id": 9,
        "contact.name": "Anna",
        "contact.phone": "+4930123",
        "contact.email": "anna@example.com",
        "time.weekday": 1,
        "time.hour": 9,
        "time.within_working_hours": True,
    }
    assert facts.previous == {"lead.status_id": 10, "lead.price": 5000, "lead.tags": ["new"]}
    moved_to_won = parse_condition(
        {"field": "lead.status_id", "operator": "changed_to", "value": 142}
    )
    assert evaluate(moved_to_won, facts).matched


def test_a_message_gives_its_text_and_channel_and_the_conversation() -> None:
    facts = facts_for(
        event(
            EventType.MESSAGE_INCOMING, lead_id=7, data={"text": "How much?", "channel": "telegram"}
        ),
        zone=BERLIN,
        now=MONDAY_MORNING,
        conversation=ConversationFacts(turns=4, minutes_since_last_reply=12.5),
    )
    assert facts.current["message.text"] == "How much?"
    assert facts.current["message.channel"] == "telegram"
    assert facts.current["conversation.turns"] == 4
    assert facts.current["conversation.minutes_since_last_reply"] == 12.5
    assert "event.task_text" not in facts.current


def test_a_task_gives_its_text_and_not_a_message() -> None:
    facts = facts_for(
        event(EventType.TASK_OVERDUE, lead_id=7, data={"task_id": 1, "text": "Call back"}),
        zone=BERLIN,
        now=MONDAY_MORNING,
    )
    assert facts.current["event.task_text"] == "Call back"
    assert "message.text" not in facts.current


def test_a_changed_field_is_named_by_its_code_or_else_its_id() -> None:
    by_code = facts_for(
        event(EventType.LEAD_FIELD_CHANGED, data={"field_id": 555, "field_code": "CITY"}),
        zone=BERLIN,
        now=MONDAY_MORNING,
    )
    by_id = facts_for(
        event(EventType.LEAD_FIELD_CHANGED, data={"field_id": 555, "field_code": None}),
        zone=BERLIN,
        now=MONDAY_MORNING,
    )
    assert by_code.current["event.field"] == "CITY"
    assert by_id.current["event.field"] == "555"


def test_silence_gives_its_minutes_and_a_schedule_gives_no_lead() -> None:
    silent = facts_for(
        event(EventType.LEAD_SILENT, lead_id=7, data={"minutes": 60}),
        zone=BERLIN,
        now=MONDAY_MORNING,
    )
    scheduled = facts_for(event(EventType.SCHEDULE), zone=BERLIN, now=MONDAY_MORNING)
    assert silent.current["event.minutes"] == 60
    assert not any(name.startswith(("lead.", "contact.")) for name in scheduled.current)
    assert scheduled.previous == {}


def test_time_is_read_in_the_organizations_zone() -> None:
    # Sunday 23:30 UTC is already Monday 08:30 in Tokyo.
    late_sunday = datetime(2025, 3, 2, 23, 30, tzinfo=UTC)
    in_tokyo = facts_for(event(EventType.SCHEDULE), zone=ZoneInfo("Asia/Tokyo"), now=late_sunday)
    in_utc = facts_for(event(EventType.SCHEDULE), zone=ZoneInfo("UTC"), now=late_sunday)
    assert (in_tokyo.current["time.weekday"], in_tokyo.current["time.hour"]) == (1, 8)
    assert (in_utc.current["time.weekday"], in_utc.current["time.hour"]) == (7, 23)


def test_within_working_hours_follows_the_hours_and_is_true_without_them() -> None:
    def within(now: datetime, hours: WorkingHours | None) -> bool:
        facts = facts_for(event(EventType.SCHEDULE), zone=BERLIN, now=now, working_hours=hours)
        return bool(facts.current["time.within_working_hours"])

    assert within(MONDAY_MORNING, OFFICE_HOURS)  # 09:30 in Berlin
    assert not within(datetime(2025, 3, 3, 7, 30, tzinfo=UTC), OFFICE_HOURS)  # 08:30
    assert not within(datetime(2025, 3, 6, 9, 0, tzinfo=UTC), OFFICE_HOURS)  # a Thursday
    assert within(datetime(2025, 3, 6, 2, 0, tzinfo=UTC), None)
