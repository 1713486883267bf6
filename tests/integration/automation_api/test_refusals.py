"""Bad input to the automation API: each refusal a 422 naming the bad part's path, with the
contract's error body, and nothing written; no input reaches a 500."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agent_platform.services import Services
from tests.integration.automation_api.helpers import (
    RULES,
    SEQUENCES,
    TRIGGERS,
    counts,
    sequence_body,
    trigger_body,
)
from tests.support.agents import assert_error


def compare(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    return {"field": field, "operator": operator, "value": value}


def deep(levels: int) -> dict[str, Any]:
    tree: dict[str, Any] = compare("lead.price", "gt", 1)
    for _ in range(levels):
        tree = {"not": tree}
    return tree


BAD_TRIGGERS: list[tuple[str, dict[str, Any], str]] = [
    ("not a tree", trigger_body(conditions=[1, 2]), "conditions"),
    ("unknown node", trigger_body(conditions={"every": []}), "conditions"),
    (
        "unknown field",
        trigger_body(conditions=compare("lead.colour", "equals", "red")),
        "conditions",
    ),
    (
        "unknown operator",
        trigger_body(conditions={"all": [compare("lead.price", "roughly", 1)]}),
        "conditions.all[0]",
    ),
    (
        "type mismatch",
        trigger_body(conditions={"all": [compare("lead.price", "gt", "a lot")]}),
        "conditions.all[0]",
    ),
    (
        "operator of another type",
        trigger_body(conditions=compare("lead.name", "gt", 3)),
        "conditions",
    ),
    (
        "regex bomb",
        trigger_body(conditions=compare("lead.name", "matches", "(a+)+$")),
        "conditions",
    ),
    ("too deep", trigger_body(conditions=deep(20)), "conditions"),
    (
        "too many nodes",
        trigger_body(conditions={"any": [compare("lead.price", "gt", n) for n in range(300)]}),
        "conditions",
    ),
    (
        "huge list value",
        trigger_body(conditions=compare("lead.price", "in", list(range(5000)))),
        "conditions",
    ),
    (
        "NUL in text",
        trigger_body(conditions=compare("lead.name", "equals", "a\x00b")),
        "conditions",
    ),
    (
        "webhook to loopback",
        trigger_body(actions=[{"type": "webhook", "url": "http://127.0.0.1/x"}]),
        "actions[0].url",
    ),
    (
        "webhook to a private network",
        trigger_body(actions=[{"type": "webhook", "url": "http://10.1.2.3/x"}]),
        "actions[0].url",
    ),
    ("no actions", trigger_body(actions=[]), "actions"),
    ("unknown action", trigger_body(actions=[{"type": "launch_rocket"}]), "actions[0]"),
    (
        "unknown template variable",
        trigger_body(actions=[{"type": "send_message", "text": "Hi {{ lead.nickname }}"}]),
        "actions[0].text",
    ),
    (
        "lead action on a schedule",
        trigger_body(event={"type": "schedule", "cron": "0 10 * * *"}, conditions=None),
        "actions[0]",
    ),
    ("unknown event", trigger_body(event={"type": "lead_exploded"}), "event.type"),
    ("a step is no trigger event", trigger_body(event={"type": "sequence_step"}), "event.type"),
    ("silence without minutes", trigger_body(event={"type": "lead_silent"}), "event.after_minutes"),
    (
        "silence too long",
        trigger_body(event={"type": "manager_silent", "after_minutes": 10**9}),
        "event.after_minutes",
    ),
    (
        "bad cron",
        trigger_body(
            event={"type": "schedule", "cron": "61 * * * *"},
            conditions=None,
            actions=[{"type": "webhook", "url": "https://example.com/x"}],
        ),
        "event.cron",
    ),
    (
        "unknown rule",
        trigger_body(conditions={"rule": "7f0c9a4e-0000-4000-8000-000000000000"}),
        "conditions",
    ),
    ("rule id not a uuid", trigger_body(conditions={"rule": "nope"}), "conditions"),
]


@pytest.mark.parametrize(
    ("body", "path"),
    [(body, path) for _, body, path in BAD_TRIGGERS],
    ids=[c for c, _, _ in BAD_TRIGGERS],
)
async def test_a_bad_trigger_is_refused_naming_the_path(
    acme: httpx.AsyncClient, services: Services, body: dict[str, Any], path: str
) -> None:
    before = await counts(services)

    response = await acme.post(TRIGGERS, json=body)

    found = assert_error(response, 422, "invalid_automation")
    [detail] = found["error"]["details"]
    assert detail["path"].startswith(path), detail
    assert detail["message"]
    assert await counts(services) == before


async def test_a_regex_bomb_is_refused_as_exponential(acme: httpx.AsyncClient) -> None:
    response = await acme.post(
        f"{RULES}/dry-run",
        json={"conditions": compare("message.text", "matches", "(a+)+$"), "event": {}},
    )
    body = assert_error(response, 422, "invalid_automation")
    assert "exponential" in body["error"]["message"]


BAD_SEQUENCES: list[tuple[str, dict[str, Any], str]] = [
    ("no steps", sequence_body(steps=[]), "steps"),
    (
        "step without delay",
        sequence_body(steps=[{"actions": [{"type": "add_tag", "tag": "x"}]}]),
        "steps[0]",
    ),
    (
        "wait in a step",
        sequence_body(
            steps=[{"delay": {"after_minutes": 1}, "actions": [{"type": "wait", "minutes": 5}]}]
        ),
        "steps[0].actions[0]",
    ),
    (
        "bad step condition",
        sequence_body(
            steps=[
                {
                    "delay": {"after_minutes": 1},
                    "conditions": compare("lead.price", "between", [5, 1]),
                    "actions": [{"type": "add_tag", "tag": "x"}],
                }
            ]
        ),
        "steps[0].conditions",
    ),
    ("bad stop_on", sequence_body(stop_on={"lead_replied": "yes"}), "stop_on.lead_replied"),
]


@pytest.mark.parametrize(
    ("body", "path"),
    [(body, path) for _, body, path in BAD_SEQUENCES],
    ids=[c for c, _, _ in BAD_SEQUENCES],
)
async def test_a_bad_sequence_is_refused_naming_the_path(
    acme: httpx.AsyncClient, services: Services, body: dict[str, Any], path: str
) -> None:
    before = await counts(services)

    found = assert_error(await acme.post(SEQUENCES, json=body), 422, "invalid_automation")

    assert found["error"]["details"][0]["path"].startswith(path), found
    assert await counts(services) == before


@pytest.mark.parametrize(
    "content",
    [
        b'{"name": "x", "event": {"type": "manual"}, "actions": [{"type": "add_tag", "tag": NaN}]}',
        b'{"name": "x", "event": {"type": "manual"}, "conditions": {"field": "lead.price", '
        b'"operator": "gt", "value": Infinity}, "actions": [{"type": "add_tag", "tag": "x"}]}',
        b"[" * 100_000 + b"]" * 100_000,
        b"not json",
        b'{"name": "x", "event": "manual", "actions": {"type": "add_tag"}}',
        b'{"name": "x", "event": {"type": "manual"}, "actions": '
        + b"[" * 5000
        + b"]" * 5000
        + b"}",
    ],
    ids=["NaN", "Infinity", "deep array", "not JSON", "wrong shapes", "deep actions"],
)
async def test_malformed_bodies_are_refused_with_a_4xx(
    acme: httpx.AsyncClient, services: Services, content: bytes
) -> None:
    before = await counts(services)

    response = await acme.post(
        TRIGGERS, content=content, headers={"Content-Type": "application/json"}
    )

    assert 400 <= response.status_code < 500, response.text
    assert await counts(services) == before


@pytest.mark.parametrize(
    "sample",
    [
        {"lead": {"price": "cheap"}},
        {"lead": {"tags": "vip"}},
        {"lead": {"id": 2**70}},
        {"conversation": {"turns": -1}},
        {"at": "2026-01-01T10:00:00"},  # no zone
        {"data": {"text": "x" * 20_000}},
        {"type": "lead_exploded"},
        {"surprise": True},
    ],
)
async def test_a_bad_sample_event_is_refused(
    acme: httpx.AsyncClient, sample: dict[str, Any]
) -> None:
    response = await acme.post(
        f"{RULES}/dry-run",
        json={"conditions": compare("lead.price", "gt", 1), "event": sample},
    )
    assert_error(response, 422, "validation_error")


async def test_odd_but_valid_samples_are_evaluated(acme: httpx.AsyncClient) -> None:
    tree = {
        "any": [
            compare("lead.price", "gt", 1),
            compare("lead.name", "matches", "^a.*z$"),
            compare("lead.custom_fields.budget", "gt", 5),
            compare("event.from_status_id", "changed_to", 3),
            compare("conversation.minutes_since_last_reply", "between", [1, 5]),
        ]
    }
    for sample in [
        {},
        {"lead": {"name": "a" * 10_000, "custom_fields": {"budget": "many"}}},
        {"data": {"from_status_id": "three"}, "conversation": {"turns": 0}},
        {"lead": {"price": 1e300}, "previous": {"price": -1e300}},
    ]:
        response = await acme.post(f"{RULES}/dry-run", json={"conditions": tree, "event": sample})
        assert response.status_code == 200, (sample, response.text)
