"""automation.actions: an action list is accepted as the models say, or refused with a message
at the exact place the editor must point to; webhook URLs into our own network are refused
before anything is stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agent_platform.automation.actions import (
    LEAD_ACTIONS,
    AddTag,
    CallWebhook,
    MoveStage,
    PauseAgent,
    SetField,
    StopSequence,
    Wait,
    action_json,
    parse_actions,
)
from agent_platform.automation.engine import RuleError
from agent_platform.automation.events import EventType

SEQUENCE_ID = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")

EVERY_ACTION: list[dict[str, Any]] = [
    {"type": "run_agent", "instruction": "Remind them of the demo tomorrow"},
    {"type": "send_message", "text": "Hello, {{ lead.name }}!"},
    {"type": "start_sequence", "sequence_id": str(SEQUENCE_ID)},
    {"type": "stop_sequence", "sequence_id": None},
    {"type": "create_task", "text": "Call {{ contact.phone }}", "due_in_minutes": 120},
    {"type": "add_note", "text": "Moved by automation"},
    {"type": "move_stage", "status_id": 142, "pipeline_id": 7},
    {"type": "set_field", "field": "UTM_SOURCE", "value": "{{ message.channel }}"},
    {"type": "set_field", "field": 5512, "value": ""},
    {"type": "add_tag", "tag": "hot"},
    {"type": "remove_tag", "tag": "cold"},
    {"type": "assign", "user_id": 12},
    {"type": "pause_agent", "minutes": 60},
    {"type": "pause_agent", "minutes": None},
    {"type": "resume_agent"},
    {"type": "webhook", "url": "https://hooks.example.com/in", "payload": {"who": "{{ lead.id }}"}},
    {"type": "wait", "minutes": 30},
]


def parse(raw: object, **options: Any) -> list[Any]:
    options.setdefault("event_type", EventType.LEAD_STATUS_CHANGED)
    return parse_actions(raw, **options)


def refusal(raw: object, **options: Any) -> RuleError:
    with pytest.raises(RuleError) as refused:
        parse(raw, **options)
    return refused.value


def test_every_action_type_is_accepted_and_stored_as_given() -> None:
    actions = parse(EVERY_ACTION)
    assert [action.type for action in actions] == [item["type"] for item in EVERY_ACTION]
    stored = [action_json(action) for action in actions]
    assert stored[2] == {"type": "start_sequence", "sequence_id": str(SEQUENCE_ID)}
    assert stored[6] == {"type": "move_stage", "status_id": 142, "pipeline_id": 7}
    assert stored[15]["payload"] == {"who": "{{ lead.id }}"}
    assert parse(stored) == actions  # what is stored parses back to the same actions


def test_defaults_fill_in_what_was_left_out() -> None:
    stop, pause, move, webhook = parse(
        [
            {"type": "stop_sequence"},
            {"type": "pause_agent"},
            {"type": "move_stage", "status_id": 142},
            {"type": "webhook", "url": "https://hooks.example.com/"},
        ]
    )
    assert stop == StopSequence(sequence_id=None)
    assert pause == PauseAgent(minutes=None)
    assert move == MoveStage(status_id=142, pipeline_id=None)
    assert webhook == CallWebhook(url="https://hooks.example.com/", payload=None)
    assert action_json(parse([{"type": "create_task", "text": "x"}])[0])["due_in_minutes"] == 60


def test_text_is_trimmed() -> None:
    assert parse([{"type": "add_tag", "tag": "  hot "}]) == [AddTag(tag="hot")]
    assert parse([{"type": "set_field", "field": " UTM ", "value": "x"}]) == [
        SetField(field="UTM", value="x")
    ]


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ({"type": "add_tag", "tag": "x"}, "actions", "must be a list of actions"),
        ([], "actions", "needs at least one action"),
        ([{"type": "resume_agent"}] * 21, "actions", "at most 20 actions, not 21"),
        (["add_tag"], "actions[0]", 'must be an object with a "type"'),
        ([{"tag": "x"}], "actions[0].type", 'names no "type"; one of: run_agent, '),
        ([{"type": "explode"}], "actions[0].type", "unknown action type 'explode'; one of: "),
        ([{"type": "send_message"}], "actions[0].text", "Field required"),
        ([{"type": "send_message", "text": "   "}], "actions[0].text", "String should have"),
        (
            [{"type": "send_message", "text": "x" * 4001}],
            "actions[0].text",
            "String should have at most 4000 characters",
        ),
        (
            [{"type": "send_message", "text": "a\x00b"}],
            "actions[0].text",
            "text cannot contain NUL characters",
        ),
        (
            [{"type": "add_tag", "tag": "x"}, {"type": "add_tag", "tag": "x", "colour": "red"}],
            "actions[1].colour",
            "Extra inputs are not permitted",
        ),
        ([{"type": "move_stage", "status_id": "142"}], "actions[0].status_id", "valid integer"),
        ([{"type": "move_stage", "status_id": True}], "actions[0].status_id", "valid integer"),
        ([{"type": "move_stage", "status_id": 0}], "actions[0].status_id", "greater than or"),
        ([{"type": "assign", "user_id": -3}], "actions[0].user_id", "greater than or equal"),
        ([{"type": "start_sequence", "sequence_id": "seq-1"}], "actions[0].sequence_id", "UUID"),
        ([{"type": "wait", "minutes": 0}], "actions[0].minutes", "greater than or equal to 1"),
        ([{"type": "wait", "minutes": 43_201}], "actions[0].minutes", "less than or equal"),
        ([{"type": "pause_agent", "minutes": 1.5}], "actions[0].minutes", "valid integer"),
        (
            [{"type": "create_task", "text": "x", "due_in_minutes": 525_601}],
            "actions[0].due_in_minutes",
            "less than or equal to 525600",
        ),
        (
            [{"type": "set_field", "field": True, "value": "x"}],
            "actions[0].field",
            "a custom field's id (a positive number) or code",
        ),
        (
            [{"type": "set_field", "field": "", "value": "x"}],
            "actions[0].field",
            "a custom field's id",
        ),
        ([{"type": "set_field", "field": 1}], "actions[0].value", "Field required"),
        ([{"type": "run_agent", "instruction": ""}], "actions[0].instruction", "at least 1"),
        (
            [{"type": "webhook", "url": "https://x.example/", "payload": ["a"]}],
            "actions[0].payload",
            "valid dictionary",
        ),
    ],
)
def test_bad_actions_are_refused_at_their_place(raw: object, path: str, message: str) -> None:
    refused = refusal(raw)
    assert refused.path == path
    assert message in refused.message


@pytest.mark.parametrize(
    ("action", "path", "message"),
    [
        ({"type": "send_message", "text": "Hi {{ lead.nam }}"}, "actions[0].text", "unknown"),
        ({"type": "create_task", "text": "{{ lead.name"}, "actions[0].text", "a '{{' is not"),
        ({"type": "add_note", "text": "{{ }}"}, "actions[0].text", "an empty variable"),
        ({"type": "set_field", "field": 1, "value": "{{ x }}"}, "actions[0].value", "unknown"),
        (
            {
                "type": "webhook",
                "url": "https://hooks.example.com/",
                "payload": {"lead": {"tags": ["{{ lead.tags }}", "{{ lead.flags }}"]}},
            },
            "actions[0].payload.lead.tags[1]",
            "unknown variable {{ lead.flags }}",
        ),
    ],
)
def test_templates_with_unknown_variables_are_refused(
    action: dict[str, Any], path: str, message: str
) -> None:
    refused = refusal([action])
    assert refused.path == path
    assert refused.message.startswith(message)


def test_an_instruction_to_the_agent_is_not_a_template() -> None:
    [action] = parse([{"type": "run_agent", "instruction": "Write {{ like this }}"}])
    assert action_json(action)["instruction"] == "Write {{ like this }}"


def test_a_schedule_has_no_lead_to_act_on() -> None:
    for action in EVERY_ACTION:
        if action["type"] in LEAD_ACTIONS:
            refused = refusal([action], event_type=EventType.SCHEDULE)
            assert refused.path == "actions[0].type"
            assert refused.message.startswith(f"a schedule has no lead: {action['type']}")
    webhook_and_wait = [a for a in EVERY_ACTION if a["type"] not in LEAD_ACTIONS]
    assert [a.type for a in parse(webhook_and_wait, event_type=EventType.SCHEDULE)] == [
        "webhook",
        "wait",
    ]


def test_a_sequence_step_cannot_wait() -> None:
    raw = [{"type": "add_tag", "tag": "x"}, {"type": "wait", "minutes": 5}]
    refused = refusal(raw, event_type=None, in_sequence=True, path="steps[1].actions")
    assert refused.path == "steps[1].actions[1].type"
    assert "use the step's delay" in refused.message
    assert parse(raw, event_type=None)[1] == Wait(minutes=5)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:8000/hook", "refused: 127.0.0.1 is a loopback address"),
        ("http://localhost/hook", "refused: localhost is a loopback address"),
        ("http://api.localhost/hook", "refused: api.localhost is a loopback address"),
        ("http://[::1]/hook", "refused: ::1 is a loopback address"),
        ("http://2130706433/hook", "refused: 2130706433 (127.0.0.1) is a loopback address"),
        ("http://0x7f.1/hook", "refused: 0x7f.1 (127.0.0.1) is a loopback address"),
        ("http://10.1.2.3/hook", "refused: 10.1.2.3 is a private address"),
        ("https://192.168.0.10/hook", "refused: 192.168.0.10 is a private address"),
        ("http://172.16.0.1/hook", "refused: 172.16.0.1 is a private address"),
        ("http://169.254.169.254/latest", "refused: 169.254.169.254 is a link-local address"),
        ("http://[fe80::1]/hook", "refused: fe80::1 is a link-local address"),
        ("http://0.0.0.0/hook", "refused: 0.0.0.0 is a unspecified address"),
        ("http://240.0.0.1/hook", "refused: 240.0.0.1 is a reserved address"),
        ("ftp://hooks.example.com/", "Only http and https URLs are allowed, not 'ftp'"),
        ("file:///etc/passwd", "Only http and https URLs are allowed, not 'file'"),
        ("https://", "'https://' names no host"),
        ("https://user:password@hooks.example.com/", "a webhook URL cannot carry credentials"),
    ],
)
def test_webhooks_into_our_network_are_refused_with_the_reason(url: str, message: str) -> None:
    refused = refusal([{"type": "add_tag", "tag": "x"}, {"type": "webhook", "url": url}])
    assert refused.path == "actions[1].url"
    assert refused.message.startswith(message), refused.message
    if message.startswith("refused"):
        assert refused.message.endswith("webhooks may only call public addresses.")


def test_private_webhook_addresses_are_accepted_when_configured() -> None:
    raw = [
        {"type": "webhook", "url": "http://127.0.0.1:8000/hook"},
        {"type": "webhook", "url": "http://10.1.2.3/hook"},
        {"type": "webhook", "url": "http://localhost/hook"},
    ]
    assert len(parse(raw, allow_private_networks=True)) == 3
    refused = refusal([{"type": "webhook", "url": "ftp://10.1.2.3/"}], allow_private_networks=True)
    assert refused.path == "actions[0].url"


def test_public_webhook_hosts_are_not_resolved_when_saved() -> None:
    # A name is checked at each call (it may resolve elsewhere by then), not when saved.
    [action] = parse([{"type": "webhook", "url": "https://no-such-host.invalid/hook"}])
    assert action == CallWebhook(url="https://no-such-host.invalid/hook")


def test_a_webhook_payload_must_be_storable_and_not_too_large() -> None:
    huge = {"type": "webhook", "url": "https://h.example/", "payload": {"x": "y" * 20_001}}
    assert refusal([huge]).path == "actions[0].payload"
    nul_key = {"type": "webhook", "url": "https://h.example/", "payload": {"a\x00": 1}}
    assert refusal([nul_key]).message == "text cannot contain NUL characters"
    surrogate = {"type": "webhook", "url": "https://h.example/", "payload": {"a": "\ud800"}}
    refused = refusal([surrogate])
    assert (refused.path, refused.message) == (
        "actions[0].payload.a",
        "text must be valid Unicode (no lone surrogates)",
    )


def test_the_path_prefix_is_the_callers() -> None:
    refused = refusal([{"type": "send_message", "text": ""}], path="steps[2].actions")
    assert refused.path == "steps[2].actions[0].text"
    assert str(refused).startswith("steps[2].actions[0].text: ")
