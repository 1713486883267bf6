"""A sequence's steps and stop conditions as the API accepts them, and which events stop it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agent_platform.automation.engine import RuleError
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.sequences.definition import (
    MAX_STEPS,
    parse_steps,
    parse_stop_on,
    stop_reason,
)

NOTE = {"type": "add_note", "text": "Hello, {{ lead.name }}"}


def step(**overrides: Any) -> dict[str, Any]:
    return {"delay": {"after_minutes": 60}, "actions": [NOTE]} | overrides


def test_steps_are_stored_in_their_checked_form() -> None:
    conditions = {"field": "lead.price", "operator": "gt", "value": 100}
    steps = parse_steps(
        [
            step(name="First touch", delay={"at": "10:00", "within_working_hours": True}),
            step(conditions=conditions),
        ],
        allow_private_networks=False,
    )
    assert steps[0]["name"] == "First touch"
    assert steps[0]["delay"] == {"after_minutes": 0, "at": "10:00", "within_working_hours": True}
    assert steps[0]["conditions"] is None
    assert steps[0]["actions"][0]["type"] == "add_note"
    assert steps[0]["actions"][0]["text"] == "Hello, {{ lead.name }}"
    assert steps[1] == {
        "name": None,
        "delay": {"after_minutes": 60},
        "conditions": conditions,
        "actions": steps[0]["actions"],
    }
    # What is stored reads back the same.
    assert parse_steps(steps, allow_private_networks=False) == steps


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([], "steps", "1 to 50 steps"),
        ({"delay": {}}, "steps", "1 to 50 steps"),
        ([step()] * (MAX_STEPS + 1), "steps", "1 to 50 steps"),
        (["step"], "steps[0]", "a step is an object"),
        ([step(), {"actions": [NOTE]}], "steps[1]", "needs a delay"),
        ([step(when="later")], "steps[0].when", "unknown key 'when'"),
        ([step(name=5)], "steps[0]", "name is text"),
        ([step(delay={"after_minutes": -5})], "steps[0].delay.after_minutes", "from 0"),
        ([step(delay={"at": "25:00"})], "steps[0].delay.at", "not a time of day"),
        ([step(actions=[])], "steps[0].actions", "at least one action"),
        ([step(actions=[{"type": "wait", "minutes": 5}])], "steps[0].actions[0]", "delay"),
        (
            [step(actions=[{"type": "webhook", "url": "http://127.0.0.1/hook"}])],
            "steps[0].actions[0].url",
            "loopback",
        ),
        (
            [step(conditions={"field": "lead.nope", "operator": "equals", "value": 1})],
            "steps[0].conditions.field",
            "lead.nope",
        ),
    ],
)
def test_bad_steps_are_refused_with_their_path(raw: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_steps(raw, allow_private_networks=False)
    assert refused.value.path.startswith(path)
    assert message in str(refused.value)


def test_a_webhook_to_a_private_address_is_accepted_when_allowed() -> None:
    steps = parse_steps(
        [step(actions=[{"type": "webhook", "url": "http://10.1.2.3/hook"}])],
        allow_private_networks=True,
    )
    assert steps[0]["actions"][0]["url"] == "http://10.1.2.3/hook"


def test_stop_conditions_are_stored_with_every_key() -> None:
    assert parse_stop_on(None) == {"lead_replied": False, "stages": [], "won_or_lost": False}
    assert parse_stop_on({"lead_replied": True, "stages": [7, 3, 7]}) == {
        "lead_replied": True,
        "stages": [3, 7],
        "won_or_lost": False,
    }


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ([], "stop_on"),
        ({"replied": True}, "stop_on.replied"),
        ({"lead_replied": "yes"}, "stop_on.lead_replied"),
        ({"won_or_lost": 1}, "stop_on.won_or_lost"),
        ({"stages": "142"}, "stop_on.stages"),
        ({"stages": [0]}, "stop_on.stages"),
        ({"stages": [True]}, "stop_on.stages"),
        ({"stages": list(range(1, 102))}, "stop_on.stages"),
    ],
)
def test_bad_stop_conditions_are_refused(raw: object, path: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_stop_on(raw)
    assert refused.value.path == path
    assert refused.value.message


def event(event_type: EventType, **data: Any) -> AutomationEvent:
    return AutomationEvent(
        type=event_type, occurred_at=datetime(2024, 1, 1, tzinfo=UTC), lead_id=1, data=data
    )


EVERYTHING = {"lead_replied": True, "stages": [55], "won_or_lost": True}
NOTHING = {"lead_replied": False, "stages": [], "won_or_lost": False}


@pytest.mark.parametrize(
    ("stop_on", "happened", "reason"),
    [
        (EVERYTHING, event(EventType.MESSAGE_INCOMING, text="hi"), "the lead replied"),
        (EVERYTHING, event(EventType.LEAD_STATUS_CHANGED, to_status_id=55), "moved to stage 55"),
        (EVERYTHING, event(EventType.LEAD_STATUS_CHANGED, to_status_id=142), "won"),
        (EVERYTHING, event(EventType.LEAD_STATUS_CHANGED, to_status_id=143), "lost"),
        (EVERYTHING, event(EventType.LEAD_STATUS_CHANGED, to_status_id=56), None),
        (EVERYTHING, event(EventType.MESSAGE_OUTGOING, text="hi"), None),
        (EVERYTHING, event(EventType.LEAD_TAG_ADDED, tag="vip"), None),
        (NOTHING, event(EventType.MESSAGE_INCOMING, text="hi"), None),
        (NOTHING, event(EventType.LEAD_STATUS_CHANGED, to_status_id=142), None),
        (
            {**NOTHING, "stages": [142]},
            event(EventType.LEAD_STATUS_CHANGED, to_status_id=142),
            "moved to stage 142",
        ),
    ],
)
def test_which_events_stop_an_enrollment(
    stop_on: dict[str, Any], happened: AutomationEvent, reason: str | None
) -> None:
    assert stop_reason(stop_on, happened) == reason
