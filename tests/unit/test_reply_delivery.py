"""Reply delivery's pure parts: the Chats API signature, Salesbot's splitting, the routing."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from agent_platform.crm.kommo.delivery import (
    ReplyConnection,
    SalesbotContinuation,
    UndeliverableReplyError,
    route_reply,
)
from agent_platform.crm.kommo.delivery.chats import (
    chats_api_for,
    new_message_body,
    signature,
    signed_headers,
)
from agent_platform.crm.kommo.delivery.salesbot import continue_body, split_for_show
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import ReplyChannel

# Kommo's own example ("Chats API methods": https://www.kommo.com/developers/content/chats/
# chats-api-methods/), with the expected checksum and signature computed independently:
#   printf '%s' "$BODY" | openssl dgst -md5
#   printf 'POST\n%s\napplication/json\n%s\n%s' "$MD5" "$DATE" "$PATH" \
#     | openssl dgst -sha1 -hmac "$SECRET"
DOC_SECRET = "5a44c5dff55f3c15a4cce8d7c4cc27e207c7e189"
DOC_DATE = "Thu, 29 Oct 2020 11:59:55 +0000"
DOC_PATH = "/v2/origin/custom/f90ba33d-c9d9-44da-b76c-c349b0ecbe41/connect"
DOC_BODY = (
    b'{"account_id":"af9945ff-1490-4cad-807d-945c15d88bec","title":"ScopeTitle",'
    b'"hook_api_version":"v2"}'
)
DOC_MD5 = "a5e8ae04332a6d0aac15f01ad05d40e3"
DOC_SIGNATURE = "e0dcc1936d766a7d5f53fe19887fafa50bef92e0"


def test_the_signature_matches_a_known_vector() -> None:
    assert hashlib.md5(DOC_BODY).hexdigest() == DOC_MD5  # noqa: S324 - the protocol's checksum
    assert (
        signature(DOC_SECRET, method="post", content_md5=DOC_MD5, date=DOC_DATE, path=DOC_PATH)
        == DOC_SIGNATURE
    )


def test_signed_headers_carry_an_rfc_2822_date_and_sign_what_they_say() -> None:
    at = datetime(2020, 10, 29, 11, 59, 55, tzinfo=UTC)
    headers = signed_headers(DOC_SECRET, method="POST", path=DOC_PATH, body=DOC_BODY, now=at)
    assert headers == {
        "Date": DOC_DATE,
        "Content-Type": "application/json",
        "Content-MD5": DOC_MD5,
        "X-Signature": DOC_SIGNATURE,
    }


def test_the_chats_api_host_follows_the_accounts_domain() -> None:
    assert chats_api_for("https://acme.kommo.com") == "https://amojo.kommo.com"
    assert chats_api_for("https://acme.amocrm.ru") == "https://amojo.amocrm.ru"


def test_short_replies_are_one_show() -> None:
    assert split_for_show("Yes, we do.") == ["Yes, we do."]
    assert split_for_show("  ") == []


def test_long_replies_are_cut_at_sentences_and_words_within_the_limit() -> None:
    text = (
        "Our courses start every Monday. The price is 300 USD for four weeks, materials "
        "included, and you can pay in two parts if that suits you better. Shall I book you?"
    )
    parts = split_for_show(text)
    assert all(0 < len(part) <= 80 for part in parts)
    assert parts[0] == "Our courses start every Monday."
    assert " ".join(parts) == text


def test_paragraphs_are_kept_apart() -> None:
    text = "First paragraph, short.\nSecond paragraph that is a little longer than the first one."
    assert split_for_show(text) == [
        "First paragraph, short.",
        "Second paragraph that is a little longer than the first one.",
    ]


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    assert split_for_show("x" * 200) == ["x" * 80, "x" * 80, "x" * 40]


def test_a_reply_beyond_ten_shows_is_cut_short_with_an_ellipsis() -> None:
    words = " ".join(f"word{i:03d}" for i in range(200))  # about 1600 characters
    parts = split_for_show(words)
    assert len(parts) == 10
    assert all(len(part) <= 80 for part in parts)
    assert parts[-1].endswith("…")


def test_the_continue_body_shows_the_parts_and_passes_the_whole_reply() -> None:
    body = continue_body("Hello! " * 20)
    assert body["data"] == {"reply": "Hello! " * 20}
    assert {h["handler"] for h in body["execute_handlers"]} == {"show"}
    assert all(h["params"]["type"] == "text" for h in body["execute_handlers"])
    assert "".join(h["params"]["value"] for h in body["execute_handlers"]).replace(" ", "") == (
        "Hello!" * 20
    )


def connection(channel: ReplyChannel, **chats: str) -> ReplyConnection:
    return ReplyConnection(
        reply_channel=channel,
        base_url="https://acme.kommo.com",
        chats_api_url=None,
        chats_scope_id=chats.get("scope_id"),
        chats_secret_encrypted=chats.get("secret"),
        chats_bot_id=chats.get("bot_id"),
    )


MESSAGE = IncomingMessage(
    message_id="m1",
    text="How much?",
    chat_id="chat-9",
    talk_id=11,
    contact_id=5,
    entity_type="leads",
    entity_id=42,
    direction="incoming",
    author_id="customer-amojo-id",
    author_name="Ann",
)
CHATS = {"scope_id": "scope-1", "secret": "enc", "bot_id": "bot-1"}


def test_the_connections_channel_decides_the_route() -> None:
    note = route_reply(connection(ReplyChannel.NOTE), MESSAGE, None, bot_name="Agent")
    assert (note.channel, note.entity_type, note.entity_id) == (ReplyChannel.NOTE, "leads", 42)
    assert note.plan("Hi", msgid="x") == {"text": "Hi"}

    chat = route_reply(connection(ReplyChannel.CHATS, **CHATS), MESSAGE, None, bot_name="Agent")
    planned = chat.plan("300 USD", msgid="agent-platform-1")
    payload = planned["request"]["payload"]
    assert (planned["scope_id"], planned["request"]["event_type"]) == ("scope-1", "new_message")
    assert (payload["msgid"], payload["conversation_ref_id"]) == ("agent-platform-1", "chat-9")
    assert payload["sender"] == {"id": "bot-1", "ref_id": "bot-1", "name": "Agent"}
    assert payload["receiver"] == {
        "id": "customer-amojo-id",
        "ref_id": "customer-amojo-id",
        "name": "Ann",
    }
    assert payload["message"] == {"type": "text", "text": "300 USD"}


def test_a_waiting_salesbot_is_answered_through_it_whatever_the_channel() -> None:
    for channel in ReplyChannel:
        route = route_reply(
            connection(channel, **CHATS), MESSAGE, SalesbotContinuation(3, 4), bot_name="Agent"
        )
        planned = route.plan("Hi", msgid="x")
        assert (route.channel, planned["bot_id"], planned["continue_id"]) == (
            ReplyChannel.SALESBOT,
            3,
            4,
        )
        assert planned["request"]["execute_handlers"][0]["params"]["value"] == "Hi"


@pytest.mark.parametrize(
    ("channel", "chats", "message", "complaint"),
    [
        (ReplyChannel.SALESBOT, {}, MESSAGE, "Salesbot"),
        (ReplyChannel.CHATS, {}, MESSAGE, "Chats scope id"),
        (
            ReplyChannel.CHATS,
            CHATS,
            IncomingMessage("m", "t", None, None, None, "leads", 1, "incoming"),
            "chat_id",
        ),
        (
            ReplyChannel.NOTE,
            {},
            IncomingMessage("m", "t", None, None, None, "companies", 1, "incoming"),
            "notes on leads or contacts",
        ),
    ],
)
def test_a_reply_without_a_way_to_the_customer_is_refused_before_any_work(
    channel: ReplyChannel, chats: dict[str, str], message: IncomingMessage, complaint: str
) -> None:
    with pytest.raises(UndeliverableReplyError, match=complaint):
        route_reply(connection(channel, **chats), message, None, bot_name="Agent")


def test_new_message_bodies_carry_one_timestamp_in_two_units() -> None:
    address = route_reply(
        connection(ReplyChannel.CHATS, **CHATS), MESSAGE, None, bot_name="Agent"
    ).chat
    assert address is not None
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    payload = new_message_body(address, "x", msgid="m", at=at)["payload"]
    assert (payload["timestamp"], payload["msec_timestamp"]) == (1767323045, 1767323045678)
