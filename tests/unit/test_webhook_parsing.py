"""Kommo's PHP-bracket form bodies, read into typed messages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_platform.crm.kommo.webhooks import (
    WebhookFormatError,
    parse_bracket_form,
    read_webhook,
)


def test_bracket_keys_nest_and_indexes_become_ordered_lists() -> None:
    tree = parse_bracket_form(
        [
            ("message[add][1][text]", "second"),
            ("message[add][0][text]", "first"),
            ("account[subdomain]", "acme"),
        ]
    )
    assert tree == {
        "message": {"add": [{"text": "first"}, {"text": "second"}]},
        "account": {"subdomain": "acme"},
    }


def test_a_message_add_event_becomes_incoming_messages() -> None:
    webhook = read_webhook(
        [
            ("message[add][0][id]", "abc"),
            ("message[add][0][text]", "Hi, price?"),
            ("message[add][0][chat_id]", "chat-9"),
            ("message[add][0][talk_id]", "77"),
            ("message[add][0][contact_id]", "5"),
            ("message[add][0][element_type]", "2"),
            ("message[add][0][element_id]", "1002"),
            ("message[add][0][type]", "incoming"),
            ("account[id]", "123"),
            ("account[subdomain]", "acme"),
        ]
    )
    assert webhook.account_subdomain == "acme"
    assert webhook.account_id == 123
    [message] = webhook.messages
    assert (message.message_id, message.text, message.entity_type, message.entity_id) == (
        "abc",
        "Hi, price?",
        "leads",
        1002,
    )
    assert (message.talk_id, message.contact_id, message.chat_id) == (77, 5, "chat-9")
    assert message.dedupe_key == "message:abc"


def test_messages_on_contacts_are_addressed_to_the_contact() -> None:
    webhook = read_webhook(
        [
            ("message[add][0][id]", "m"),
            ("message[add][0][text]", "hello"),
            ("message[add][0][element_type]", "1"),
            ("message[add][0][element_id]", "5"),
        ]
    )
    assert webhook.messages[0].entity_type == "contacts"


def test_other_kommo_events_are_recognised_without_messages() -> None:
    webhook = read_webhook([("leads[status][0][id]", "1"), ("account[id]", "1")])
    assert webhook.sections == {"leads"}
    assert webhook.messages == []


@pytest.mark.parametrize(
    ("pairs", "complaint"),
    [
        ([("foo", "bar")], "no Kommo event"),
        ([("account[id]", "1")], "no Kommo event"),
        ([("message[add][0][id]", "1"), ("message[add][0][text]", "x")], "lacks element_id"),
        ([("message[add][0][text]", "x"), ("message[add][0][element_id]", "3")], "lacks id"),
        (
            [
                ("message[add][0][id]", "1"),
                ("message[add][0][text]", "x"),
                ("message[add][0][element_id]", "x1"),
            ],
            "not a number",
        ),
        ([("message[add]]", "1")], "malformed"),
        ([("message[add]", "x"), ("message[add][0][id]", "1")], "conflicts"),
        ([("message[add][0][id]", "1"), ("message[add]", "x")], "conflicts"),
        ([("message[add]", "x")], "must be a list"),
        ([("a" + "[b]" * 20, "deep")], "nested too deeply"),
    ],
)
def test_bodies_that_are_not_kommo_webhooks_are_refused_with_a_reason(
    pairs: list[tuple[str, str]], complaint: str
) -> None:
    with pytest.raises(WebhookFormatError, match=complaint):
        read_webhook(pairs)


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=10))
def test_any_form_either_parses_or_is_refused_cleanly(pairs: list[tuple[str, str]]) -> None:
    # Only WebhookFormatError may escape: anything else would be a 500 at the endpoint.
    with contextlib.suppress(WebhookFormatError):
        read_webhook(pairs)
