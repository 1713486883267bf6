"""Kommo webhook events as automation events: the own event of each lead webhook, and the
tags added and fields changed found by comparing the lead with its snapshot."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from agent_platform.automation.dispatch import kommo_event_from_payload
from agent_platform.automation.events import EventType
from agent_platform.automation.kommo_events import (
    automation_events,
    fields_changed,
    lead_facts_of,
    manager_message_event,
    possible_events,
    tags_added,
)
from agent_platform.crm.kommo.webhooks import KommoEvent, read_webhook
from tests.support.factories import message_form

CONNECTION = uuid.UUID("00000000-0000-0000-0000-000000000001")
AT = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def lead_event(action: str, **fields: str) -> KommoEvent:
    base = {
        "id": "42",
        "name": "Sofa deal",
        "status_id": "143",
        "pipeline_id": "7",
        "price": "1500",
        "responsible_user_id": "5",
        "tags[0][id]": "1",
        "tags[0][name]": "vip",
        "custom_fields[0][id]": "300",
        "custom_fields[0][code]": "BUDGET",
        "custom_fields[0][values][0][value]": "2000",
    } | fields
    form = {_bracketed(f"leads[{action}][0]", key): value for key, value in base.items()}
    [event] = read_webhook((form | {"account[id]": "1"}).items()).events
    return event


def _bracketed(prefix: str, key: str) -> str:
    """`tags[0][id]` under `leads[add][0]` is `leads[add][0][tags][0][id]`."""
    head, _, rest = key.partition("[")
    return f"{prefix}[{head}]" + (f"[{rest}" if rest else "")


def events_of(event: KommoEvent, snapshot: dict[str, Any] | None = None) -> list[Any]:
    return automation_events(event, connection_id=CONNECTION, snapshot=snapshot, occurred_at=AT)


def test_a_lead_webhook_carries_the_leads_facts_with_numbers_as_numbers() -> None:
    assert lead_facts_of(lead_event("update")) == {
        "id": 42,
        "name": "Sofa deal",
        "price": 1500,
        "status_id": 143,
        "pipeline_id": 7,
        "responsible_user_id": 5,
        "tags": ["vip"],
        "custom_fields": {"300": 2000, "BUDGET": 2000},
    }


def test_a_status_change_says_from_and_to() -> None:
    [event] = events_of(lead_event("status", old_status_id="142", old_pipeline_id="6"))

    assert event.type is EventType.LEAD_STATUS_CHANGED
    assert event.lead_id == 42
    assert event.data == {
        "from_status_id": 142,
        "to_status_id": 143,
        "from_pipeline_id": 6,
        "to_pipeline_id": 7,
    }
    # No snapshot: what came before is the lead with its old stage.
    assert event.previous["status_id"] == 142
    assert event.lead["status_id"] == 143


def test_without_old_values_the_status_change_takes_them_from_the_snapshot() -> None:
    snapshot = lead_facts_of(lead_event("update", status_id="10", pipeline_id="3"))
    [event] = events_of(lead_event("status"), snapshot)

    assert event.data["from_status_id"] == 10
    assert event.data["from_pipeline_id"] == 3
    assert event.previous == snapshot


def test_a_responsible_change_says_from_and_to() -> None:
    [event] = events_of(lead_event("responsible", old_responsible_user_id="9"))

    assert event.type is EventType.LEAD_RESPONSIBLE_CHANGED
    assert event.data == {"from_user_id": 9, "to_user_id": 5}


def test_an_update_gives_the_tags_added_and_the_fields_changed_since_the_snapshot() -> None:
    snapshot = lead_facts_of(lead_event("update"))
    changed = lead_event(
        "update",
        **{
            "tags[1][id]": "2",
            "tags[1][name]": "hot",
            "custom_fields[0][values][0][value]": "2500",
        },
    )

    tag, field = events_of(changed, snapshot)

    assert (tag.type, tag.data) == (EventType.LEAD_TAG_ADDED, {"tag": "hot"})
    assert field.type is EventType.LEAD_FIELD_CHANGED
    assert field.data == {
        "field": "BUDGET",
        "field_id": 300,
        "field_code": "BUDGET",
        "value": 2500,
        "previous": 2000,
    }
    assert field.previous == snapshot
    assert len({tag.key, field.key}) == 2


def test_an_update_without_a_snapshot_or_without_a_difference_gives_nothing() -> None:
    update = lead_event("update")
    assert events_of(update) == []
    assert events_of(update, lead_facts_of(update)) == []


def test_a_new_lead_is_lead_created() -> None:
    [event] = events_of(lead_event("add"))
    assert event.type is EventType.LEAD_CREATED
    assert event.previous is None


def test_differences_as_pure_functions() -> None:
    before = {"tags": ["a"], "custom_fields": {"1": "x", "CODE": "x", "2": 5}}
    after = {"tags": ["a", "b"], "custom_fields": {"1": "y", "CODE": "y"}}

    assert tags_added(before, after) == ["b"]
    assert tags_added(after, before) == []
    changes = fields_changed(before, after, {1: "CODE"})
    assert [(c.field_id, c.field_code, c.value, c.previous) for c in changes] == [
        (1, "CODE", "y", "x"),
        (2, None, None, 5),  # emptied: Kommo leaves it out of the webhook
    ]


def test_chat_messages_are_incoming_or_outgoing_messages() -> None:
    [incoming] = read_webhook(message_form("m-1", "Hello", lead_id=42).items()).events
    [outgoing] = read_webhook(
        message_form("m-2", "Hi!", lead_id=42, direction="outgoing").items()
    ).events

    [event] = events_of(incoming)
    assert event.type is EventType.MESSAGE_INCOMING
    assert event.lead_id == 42
    assert event.data["text"] == "Hello"
    assert event.contact == {"id": 1001, "name": "Ann"}
    # An outgoing message may be our own reply: agent.manager_messages decides, then raises it.
    assert possible_events(outgoing) == ()
    manager = manager_message_event(outgoing, uuid.uuid4(), datetime.now(UTC))
    assert manager is not None
    assert (manager.type, manager.data["text"]) == (EventType.MESSAGE_OUTGOING, "Hi!")


def test_events_automation_does_not_read_give_nothing() -> None:
    form = {"contacts[add][0][id]": "5", "contacts[add][0][name]": "Ann"}
    [contact] = read_webhook(form.items()).events
    assert possible_events(contact) == ()
    assert events_of(contact) == []


def test_an_event_read_back_from_the_inbox_is_the_same_event() -> None:
    event = lead_event("status", old_status_id="142")
    [incoming] = read_webhook(message_form("m-1", "Hello", lead_id=42).items()).events
    assert kommo_event_from_payload(event.to_payload()) == event
    assert kommo_event_from_payload(incoming.to_payload()) == incoming
