"""Kommo's PHP-bracket form bodies, read into typed, normalized events.

The bodies below follow the shapes of Kommo's hooks as they arrive: the keys and value formats
of amoCRM's "Webhooks format" page (https://www.amocrm.ru/developers/content/crm_platform/
webhooks-format), of Kommo's "Webhooks" page (https://developers.kommo.com/docs/webhooks-
general) and of live hooks published by integrators where the pages show none (notes, talks,
messages, unsorted). Ids, names and texts are our own.
"""

from __future__ import annotations

import contextlib
import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_platform.crm.kommo.webhooks import (
    CustomField,
    CustomFieldValue,
    EventFamily,
    IncomingMessage,
    KommoEvent,
    WebhookFormatError,
    message_json,
    parse_bracket_form,
    read_salesbot_request,
    read_webhook,
)


def form(body: str) -> list[tuple[str, str]]:
    """A body as Kommo sends it (one `key=value` per line here, for legibility)."""
    return parse_qsl("&".join(line.strip() for line in body.strip().splitlines()))


def only_event(body: str) -> KommoEvent:
    [event] = read_webhook(form(body)).events
    return event


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


def test_a_lead_status_change_with_custom_fields_and_tags() -> None:
    """Shape: amoCRM "Webhooks format", `status_lead`; a date field's value is a bare string."""
    event = only_event(
        """
        leads[status][0][id]=4810233
        leads[status][0][name]=Workshop: nutrition
        leads[status][0][status_id]=142
        leads[status][0][old_status_id]=20067736
        leads[status][0][price]=22500
        leads[status][0][responsible_user_id]=2079676
        leads[status][0][last_modified]=1739782664
        leads[status][0][modified_user_id]=2079718
        leads[status][0][created_user_id]=2076025
        leads[status][0][date_create]=1739782209
        leads[status][0][pipeline_id]=9217056
        leads[status][0][tags][0][id]=80147
        leads[status][0][tags][0][name]=returning
        leads[status][0][account_id]=17769199
        leads[status][0][custom_fields][0][id]=66339
        leads[status][0][custom_fields][0][name]=Source
        leads[status][0][custom_fields][0][values][0][value]=Website
        leads[status][0][custom_fields][0][values][0][enum]=139517
        leads[status][0][custom_fields][1][id]=72333
        leads[status][0][custom_fields][1][name]=Event date
        leads[status][0][custom_fields][1][values][0]=1742067200
        account[subdomain]=acme
        account[id]=17769199
        """
    )
    assert (event.family, event.action, event.is_known) == (EventFamily.LEADS, "status", True)
    assert (event.item_id, event.entity_type, event.entity_id) == ("4810233", "leads", 4810233)
    assert event.account_id == 17769199
    assert event.data["old_status_id"] == "20067736"
    assert event.data["tags"] == [{"id": "80147", "name": "returning"}]
    assert event.custom_fields == (
        CustomField(66339, "Source", None, (CustomFieldValue("Website", 139517),)),
        CustomField(72333, "Event date", None, (CustomFieldValue("1742067200"),)),
    )


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("add", "[name]=New lead&leads[add][0][status_id]=1001&leads[add][0][pipeline_id]=10"),
        ("update", "[name]=Renamed&leads[update][0][last_modified]=1739790000"),
        ("delete", "[status_id]=1001&leads[delete][0][pipeline_id]=10"),
        ("restore", "[name]=Back again&leads[restore][0][status_id]=1001"),
        ("responsible", "[responsible_user_id]=7&leads[responsible][0][old_responsible_user_id]=9"),
    ],
)
def test_every_lead_action_names_its_lead(action: str, fields: str) -> None:
    """Shape: amoCRM "Webhooks format": `{entity}[{action}][0][id]` and the entity's fields."""
    body = f"leads[{action}][0][id]=555&leads[{action}][0]{fields}&account[id]=1"
    [event] = read_webhook(parse_qsl(body)).events
    assert (event.family, event.action, event.is_known) == (EventFamily.LEADS, action, True)
    assert (event.item_id, event.entity_type, event.entity_id) == ("555", "leads", 555)


def test_a_note_added_to_a_lead_concerns_the_lead() -> None:
    """Shape: live `note_lead` hooks: `leads[note][0][note][…]`, note_type as a number."""
    event = only_event(
        """
        leads[note][0][note][id]=91001
        leads[note][0][note][note_type]=4
        leads[note][0][note][element_id]=4810233
        leads[note][0][note][element_type]=2
        leads[note][0][note][text]=Call back in the morning
        leads[note][0][note][created_by]=2079718
        leads[note][0][note][date_create]=1739790100
        leads[note][0][note][account_id]=17769199
        account[id]=17769199
        """
    )
    assert (event.family, event.action) == (EventFamily.LEADS, "note")
    assert (event.item_id, event.entity_type, event.entity_id) == ("91001", "leads", 4810233)
    assert event.data["note"]["text"] == "Call back in the morning"


def test_a_contact_update_keeps_its_custom_fields_and_linked_leads() -> None:
    """Shape: a live `update_contact` hook: codes on system fields, linked leads keyed by id."""
    event = only_event(
        """
        contacts[update][0][id]=22309159
        contacts[update][0][name]=Ann Smith
        contacts[update][0][responsible_user_id]=2079718
        contacts[update][0][last_modified]=1738066975
        contacts[update][0][custom_fields][0][id]=54667
        contacts[update][0][custom_fields][0][name]=Phone
        contacts[update][0][custom_fields][0][code]=PHONE
        contacts[update][0][custom_fields][0][values][0][value]=%2B15550100
        contacts[update][0][custom_fields][0][values][0][enum]=114611
        contacts[update][0][custom_fields][0][values][1][value]=%2B15550101
        contacts[update][0][custom_fields][0][values][1][enum]=114613
        contacts[update][0][linked_leads_id][9982719][ID]=9982719
        contacts[update][0][linked_leads_id][9967531][ID]=9967531
        contacts[update][0][type]=contact
        account[subdomain]=acme
        """
    )
    assert (event.family, event.action, event.entity_type, event.entity_id) == (
        EventFamily.CONTACTS,
        "update",
        "contacts",
        22309159,
    )
    [phone] = event.custom_fields
    assert (phone.code, [v.value for v in phone.values]) == ("PHONE", ["+15550100", "+15550101"])
    assert event.data["linked_leads_id"] == [{"ID": "9967531"}, {"ID": "9982719"}]


def test_a_company_sent_among_contacts_is_a_company() -> None:
    """Shape: a live amoCRM hook: company changes come as `contacts[…]` with `type=company`."""
    event = only_event(
        """
        contacts[update][0][id]=7793457
        contacts[update][0][name]=Harbour Motors
        contacts[update][0][updated_at]=1742684812
        contacts[update][0][type]=company
        account[id]=29138932
        """
    )
    assert (event.section, event.family, event.entity_type, event.entity_id) == (
        "contacts",
        EventFamily.COMPANIES,
        "companies",
        7793457,
    )


def test_companies_and_their_notes() -> None:
    """Shape: Kommo "Webhooks": `companies[add]`, and `companies[note]` like leads' notes."""
    webhook = read_webhook(
        form(
            """
            companies[add][0][id]=33001
            companies[add][0][name]=Acme Corp
            companies[note][0][note][id]=77
            companies[note][0][note][element_id]=33001
            companies[note][0][note][element_type]=3
            companies[note][0][note][text]=Met at the fair
            """
        )
    )
    added, note = webhook.events
    assert (added.family, added.action, added.entity_type, added.entity_id) == (
        EventFamily.COMPANIES,
        "add",
        "companies",
        33001,
    )
    assert (note.action, note.item_id, note.entity_type, note.entity_id) == (
        "note",
        "77",
        "companies",
        33001,
    )


def test_tasks_concern_the_entity_they_are_set_on() -> None:
    """Shape: live `add_task`/`update_task`/`delete_task` hooks: `task[…]`, element_type 2."""
    webhook = read_webhook(
        form(
            """
            task[add][0][id]=5001
            task[add][0][element_id]=4810233
            task[add][0][element_type]=2
            task[add][0][task_type]=1
            task[add][0][text]=Call the customer
            task[add][0][status]=0
            task[add][0][complete_till]=1739800000
            task[add][0][responsible_user_id]=2079718
            task[update][0][id]=5002
            task[update][0][element_id]=22309159
            task[update][0][element_type]=1
            task[update][0][status]=1
            task[delete][0][id]=5003
            account[id]=17769199
            """
        )
    )
    added, updated, deleted = webhook.events
    assert (added.family, added.action, added.item_id) == (EventFamily.TASKS, "add", "5001")
    assert (added.entity_type, added.entity_id) == ("leads", 4810233)
    assert (updated.action, updated.entity_type, updated.entity_id) == (
        "update",
        "contacts",
        22309159,
    )
    assert (deleted.action, deleted.entity_type, deleted.entity_id) == ("delete", None, None)
    assert all(event.is_known for event in webhook.events)


def test_talks_are_keyed_by_talk_id_and_concern_their_entity() -> None:
    """Shape: live `add_talk`/`update_talk` hooks (talk_id, chat_id, entity_*, is_in_work)."""
    webhook = read_webhook(
        form(
            """
            talk[add][0][talk_id]=106564
            talk[add][0][created_at]=1739790000
            talk[add][0][updated_at]=1739790000
            talk[add][0][contact_id]=28771643
            talk[add][0][chat_id]=6f1d2c3b-1111-4222-8333-944455556666
            talk[add][0][entity_id]=23711835
            talk[add][0][entity_type]=lead
            talk[add][0][is_in_work]=1
            talk[add][0][is_read]=0
            talk[add][0][origin]=waba
            talk[update][0][talk_id]=106564
            talk[update][0][entity_id]=23711835
            talk[update][0][entity_type]=leads
            talk[update][0][is_read]=1
            talk[update][0][updated_at]=1739790100
            account[subdomain]=acme
            """
        )
    )
    added, updated = webhook.events
    assert (added.family, added.action, added.item_id) == (EventFamily.TALKS, "add", "106564")
    assert (added.entity_type, added.entity_id) == ("leads", 23711835)
    assert (updated.action, updated.entity_type) == ("update", "leads")
    assert added.dedupe_key != updated.dedupe_key


def test_a_customers_message_and_a_managers_reply() -> None:
    """Shape: live `add_message` hooks: one `message[add]` per message, `type` incoming or
    outgoing, the chat's author, entity given both as element_* and entity_*."""
    webhook = read_webhook(
        form(
            """
            message[add][0][id]=2b1e7c1e-0001-4aaa-8bbb-1234567890ab
            message[add][0][chat_id]=6f1d2c3b-1111-4222-8333-944455556666
            message[add][0][talk_id]=106564
            message[add][0][contact_id]=28771643
            message[add][0][text]=Hello! How much is the course?
            message[add][0][created_at]=1739790200
            message[add][0][element_type]=2
            message[add][0][entity_type]=lead
            message[add][0][element_id]=23711835
            message[add][0][entity_id]=23711835
            message[add][0][type]=incoming
            message[add][0][author][id]=0d5c2b9a-aaaa-4bbb-8ccc-ddddeeeeffff
            message[add][0][author][type]=external
            message[add][0][author][name]=Ann
            message[add][0][origin]=waba
            message[add][1][id]=2b1e7c1e-0002-4aaa-8bbb-1234567890ab
            message[add][1][chat_id]=6f1d2c3b-1111-4222-8333-944455556666
            message[add][1][talk_id]=106564
            message[add][1][contact_id]=28771643
            message[add][1][text]=Hi Ann, 300 USD.
            message[add][1][element_type]=2
            message[add][1][element_id]=23711835
            message[add][1][type]=outgoing
            message[add][1][author][id]=7
            message[add][1][author][type]=user
            account[id]=17769199
            account[subdomain]=acme
            """
        )
    )
    incoming, outgoing = webhook.events
    assert incoming.message == IncomingMessage(
        message_id="2b1e7c1e-0001-4aaa-8bbb-1234567890ab",
        text="Hello! How much is the course?",
        chat_id="6f1d2c3b-1111-4222-8333-944455556666",
        talk_id=106564,
        contact_id=28771643,
        entity_type="leads",
        entity_id=23711835,
        direction="incoming",
        author_id="0d5c2b9a-aaaa-4bbb-8ccc-ddddeeeeffff",
        author_name="Ann",
    )
    assert incoming.message.is_from_customer
    assert incoming.dedupe_key == "message:2b1e7c1e-0001-4aaa-8bbb-1234567890ab"
    assert (incoming.family, incoming.entity_type, incoming.account_id) == (
        EventFamily.MESSAGES,
        "leads",
        17769199,
    )
    assert outgoing.message is not None
    assert not outgoing.message.is_from_customer
    assert webhook.messages == [incoming.message, outgoing.message]
    assert IncomingMessage(**message_json(incoming.message)) == incoming.message


def test_a_picture_without_text_is_a_message_with_empty_text() -> None:
    """Shape: live `add_message` hooks for attachments: no `text`, an `attachment[…]`."""
    event = only_event(
        """
        message[add][0][id]=m-picture
        message[add][0][element_type]=1
        message[add][0][element_id]=5
        message[add][0][type]=incoming
        message[add][0][attachment][type]=picture
        message[add][0][attachment][link]=https://example.com/a.jpg
        """
    )
    assert event.message is not None
    assert (event.message.text, event.message.entity_type) == ("", "contacts")


def test_incoming_leads_from_unsorted() -> None:
    """Shape: live `add_unsorted`/`delete_unsorted` hooks: keyed by `uid`, the lead in
    `lead_id`; a delete says whether it was accepted or declined."""
    webhook = read_webhook(
        form(
            """
            unsorted[add][0][uid]=7b0a1f4c9d2e
            unsorted[add][0][source]=com.example.chat
            unsorted[add][0][source_uid]=src-1
            unsorted[add][0][category]=chats
            unsorted[add][0][source_data][client][name]=Ann
            unsorted[add][0][source_data][client][id]=%2B15550100
            unsorted[add][0][source_data][origin][chat_id]=chat-77
            unsorted[add][0][source_data][data][0][text]=Is it still available?
            unsorted[add][0][date_create]=1739790300
            unsorted[add][0][data][contacts][0][id]=28771643
            unsorted[add][0][pipeline_id]=9217056
            unsorted[add][0][lead_id]=23711900
            unsorted[add][0][account_id]=17769199
            unsorted[delete][0][uid]=7b0a1f4c9d2e
            unsorted[delete][0][action]=accept
            unsorted[delete][0][accept_result][leads][0]=23711900
            """
        )
    )
    added, deleted = webhook.events
    assert (added.family, added.action, added.item_id) == (
        EventFamily.UNSORTED,
        "add",
        "7b0a1f4c9d2e",
    )
    assert (added.entity_type, added.entity_id, added.account_id) == ("leads", 23711900, 17769199)
    assert added.data["source_data"]["data"][0]["text"] == "Is it still available?"
    assert (deleted.action, deleted.data["action"]) == ("delete", "accept")


def test_several_events_in_one_body_each_become_an_event() -> None:
    webhook = read_webhook(
        form(
            """
            leads[update][0][id]=1
            leads[update][1][id]=2
            leads[status][0][id]=1
            contacts[add][0][id]=3
            account[id]=9
            """
        )
    )
    assert [(e.section, e.action, e.item_id) for e in webhook.events] == [
        ("leads", "update", "1"),
        ("leads", "update", "2"),
        ("leads", "status", "1"),
        ("contacts", "add", "3"),
    ]


def test_unknown_sections_and_actions_are_events_we_do_not_act_on() -> None:
    webhook = read_webhook(
        form(
            """
            catalogs[add][0][id]=1
            catalogs[add][0][name]=Products
            leads[archive][0][id]=2
            account[id]=9
            """
        )
    )
    unknown, odd_action = webhook.events
    assert (unknown.family, unknown.section, unknown.is_known) == (
        EventFamily.UNKNOWN,
        "catalogs",
        False,
    )
    assert unknown.data == {"body": {"add": [{"id": "1", "name": "Products"}]}}
    assert (odd_action.family, odd_action.action, odd_action.is_known) == (
        EventFamily.LEADS,
        "archive",
        False,
    )


def test_dedupe_keys_repeat_for_kommos_retries_and_differ_for_a_second_change() -> None:
    first = form("leads[update][0][id]=1&leads[update][0][last_modified]=1739790000")
    retry = list(first)
    second_change = form("leads[update][0][id]=1&leads[update][0][last_modified]=1739790001")
    same_second_other_value = form(
        "leads[update][0][id]=1&leads[update][0][last_modified]=1739790000&leads[update][0][price]=5"
    )
    keys = [
        only_event_of(pairs).dedupe_key
        for pairs in (first, retry, second_change, same_second_other_value)
    ]
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3
    assert keys[0].startswith("leads:update:1:")


def only_event_of(pairs: list[tuple[str, str]]) -> KommoEvent:
    [event] = read_webhook(pairs).events
    return event


def test_payloads_are_json_and_keep_what_the_automation_needs() -> None:
    event = only_event("leads[status][0][id]=7&leads[status][0][status_id]=142&account[id]=3")
    payload = json.loads(json.dumps(event.to_payload()))
    assert payload == {
        "section": "leads",
        "family": "leads",
        "action": "status",
        "item_id": "7",
        "entity_type": "leads",
        "entity_id": 7,
        "account_id": 3,
        "custom_fields": [],
        "data": {"id": "7", "status_id": "142"},
    }


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
        ([("message[add]", "x")], "must be a list of objects"),
        ([("leads[add][id]", "5")], "must be a list of objects"),
        ([("leads[0][id]", "5")], "must hold actions"),
        ([("a" + "[b]" * 20, "deep")], "nested too deeply"),
    ],
)
def test_bodies_that_are_not_kommo_webhooks_are_refused_with_a_reason(
    pairs: list[tuple[str, str]], complaint: str
) -> None:
    with pytest.raises(WebhookFormatError, match=complaint):
        read_webhook(pairs)


def _check_parses_or_refuses(pairs: list[tuple[str, str]]) -> None:
    # Only WebhookFormatError may escape: anything else would be a 500 at the endpoint.
    with contextlib.suppress(WebhookFormatError):
        webhook = read_webhook(pairs)
        for event in webhook.events:
            assert len(event.dedupe_key) <= 255
            json.dumps(event.to_payload())


@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=30)), max_size=10))
def test_any_form_either_parses_or_is_refused_cleanly(pairs: list[tuple[str, str]]) -> None:
    _check_parses_or_refuses(pairs)


_SECTIONS = st.sampled_from(
    [
        "leads",
        "contacts",
        "companies",
        "customers",
        "task",
        "talk",
        "message",
        "unsorted",
        "account",
    ]
)
_PARTS = st.one_of(
    st.sampled_from(["add", "update", "delete", "status", "note", "0", "1", "10", "²", ""]),
    st.sampled_from(["id", "text", "element_id", "entity_type", "talk_id", "uid", "type"]),
    st.integers(min_value=0, max_value=3).map(str),
    st.text(alphabet=st.characters(blacklist_characters="[]"), max_size=8),
)
_BRACKET_KEYS = st.builds(
    lambda section, parts: section + "".join(f"[{part}]" for part in parts),
    st.one_of(_SECTIONS, st.text(alphabet=st.characters(blacklist_characters="[]"), min_size=1)),
    st.lists(_PARTS, max_size=9),
)
_VALUES = st.one_of(
    st.sampled_from(["1", "42", "incoming", "lead", "2", "company"]), st.text(max_size=12)
)


@given(st.lists(st.tuples(_BRACKET_KEYS, _VALUES), max_size=25))
def test_generated_bracket_keys_either_parse_or_are_refused_cleanly(
    pairs: list[tuple[str, str]],
) -> None:
    _check_parses_or_refuses(pairs)


# --- Salesbot widget_request -----------------------------------------------------------------


def test_a_widget_request_names_the_bot_to_continue_and_the_customers_message() -> None:
    """Shape: Kommo "Private Chatbot integration" (https://developers.kommo.com/docs/private-
    chatbot-integration): `token`, `data` as the bot's designer set it, `return_url`."""
    request = read_salesbot_request(
        {
            "token": "eyJhbGciOiJIUzI1NiJ9.e30.signature",
            "data": {"message": "Do you ship abroad?", "lead_id": "23711835", "talk_id": 106564},
            "return_url": "https://acme.kommo.com/api/v4/salesbot/321/continue/654",
        }
    )
    assert (request.bot_id, request.continue_id) == (321, 654)
    assert request.dedupe_key == "salesbot:321:654"
    assert (request.message.text, request.message.entity_type, request.message.entity_id) == (
        "Do you ship abroad?",
        "leads",
        23711835,
    )
    assert request.message.talk_id == 106564


def test_a_form_encoded_widget_request_on_a_contact() -> None:
    request = read_salesbot_request(
        parse_bracket_form(
            form(
                """
                token=abc
                data[message]=Hi
                data[contact_id]=28771643
                return_url=https://acme.amocrm.ru/api/v4/salesbot/1/continue/2
                """
            )
        )
    )
    assert (request.message.entity_type, request.message.entity_id) == ("contacts", 28771643)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"data": "x", "return_url": "https://a.kommo.com/api/v4/salesbot/1/continue/2"}, "data"),
        ({"data": {"message": "hi", "lead_id": "1"}}, "return_url"),
        ({"data": {"message": "hi", "lead_id": "1"}, "return_url": "https://a/x/1"}, "return_url"),
        (
            {"data": {"lead_id": "1"}, "return_url": "https://a/api/v4/salesbot/1/continue/2"},
            "message",
        ),
        (
            {"data": {"message": "hi"}, "return_url": "https://a/api/v4/salesbot/1/continue/2"},
            "lead_id",
        ),
    ],
)
def test_widget_requests_we_cannot_answer_are_refused(
    body: dict[str, object], complaint: str
) -> None:
    with pytest.raises(WebhookFormatError, match=complaint):
        read_salesbot_request(body)
