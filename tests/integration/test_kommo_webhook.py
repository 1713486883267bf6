"""POST /webhooks/kommo/{token}: inbox row and job in one transaction; bad input changes nothing."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from agent_platform.config import Settings
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.urls import libpq_url
from agent_platform.services import Services
from tests.support.factories import ConnectedAgent, message_form, use_reply_channel


def inbox(database_url: str) -> list[tuple[str, str, str, str]]:
    """(dedupe key, status, family, action) of every inbox event, oldest first."""
    with psycopg.connect(libpq_url(database_url)) as connection:
        rows = connection.execute(
            "SELECT dedupe_key, status, payload->>'family', payload->>'action' "
            "FROM inbox_events ORDER BY received_at, dedupe_key"
        ).fetchall()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def counts(database_url: str) -> tuple[int, int]:
    with psycopg.connect(libpq_url(database_url)) as connection:
        inbox = connection.execute("SELECT count(*) FROM inbox_events").fetchone()
        jobs = connection.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()
    assert inbox
    assert jobs
    return inbox[0], jobs[0]


async def test_new_message_stores_inbox_event_and_defers_one_job(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("msg-1", "Hello!", lead_id=DEMO_LEAD_ID),
            headers={"X-Request-ID": "trace-123"},
        )
    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert response.headers["x-request-id"] == "trace-123"
    assert settings.database_url
    with psycopg.connect(libpq_url(settings.database_url)) as connection:
        event = connection.execute(
            "SELECT dedupe_key, status, request_id, payload->'message'->>'text' FROM inbox_events"
        ).fetchone()
        job = connection.execute(
            "SELECT task_name, queue_name, args->>'request_id' FROM procrastinate_jobs"
        ).fetchone()
    assert event == ("message:msg-1", "pending", "trace-123", "Hello!")
    assert job == ("answer_incoming_message", "agent-jobs", "trace-123")


async def test_repeated_webhook_is_acknowledged_without_a_second_job(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    form = message_form("msg-dup", "Hello!", lead_id=DEMO_LEAD_ID)
    async with httpx.AsyncClient(base_url=api_url) as client:
        first = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
        second = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["duplicates"] == 1
    assert settings.database_url
    assert counts(settings.database_url) == (1, 1)


async def test_a_manager_message_gets_the_job_that_records_it_not_a_reply(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    form = message_form("msg-out", "We will call you", lead_id=DEMO_LEAD_ID, direction="outgoing")
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
    assert response.json()["accepted"] == 1
    assert settings.database_url
    assert inbox(settings.database_url) == [("message:msg-out", "pending", "messages", "add")]
    with psycopg.connect(libpq_url(settings.database_url)) as connection:
        jobs = connection.execute("SELECT task_name FROM procrastinate_jobs").fetchall()
    assert jobs == [("record_manager_message",)]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (
            "message[add][0][id]=1&message[add][0][text]=hi",
            "application/json",
            400,
            "invalid_webhook",
        ),
        ("foo=bar", "application/x-www-form-urlencoded", 400, "invalid_webhook"),
        (
            "message[add][0][id]=1&message[add][0][text]=hi",
            "application/x-www-form-urlencoded",
            400,
            "invalid_webhook",
        ),
        (
            "message[add][0][id]=1&message[add][0][text]=hi&message[add][0][element_id]=abc",
            "application/x-www-form-urlencoded",
            400,
            "invalid_webhook",
        ),
        ("message[add]]=1", "application/x-www-form-urlencoded", 400, "invalid_webhook"),
        (
            "message[add]=x&message[add][0][id]=1",
            "application/x-www-form-urlencoded",
            400,
            "invalid_webhook",
        ),
        ("", "application/x-www-form-urlencoded", 400, "invalid_webhook"),
        ("leads[add][id]=5", "application/x-www-form-urlencoded", 400, "invalid_webhook"),
        ("leads[add][0][id]=5%00", "application/x-www-form-urlencoded", 400, "invalid_webhook"),
        (
            "leads[add][0][id]=5&message[add][0][text]=hi",
            "application/x-www-form-urlencoded",
            400,
            "invalid_webhook",
        ),
    ],
)
async def test_bad_bodies_get_a_clear_400_and_change_nothing(
    api_url: str,
    connected: ConnectedAgent,
    settings: Settings,
    body: str,
    content_type: str,
    status: int,
    code: str,
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            content=body,
            headers={"Content-Type": content_type},
        )
    assert response.status_code == status
    payload = response.json()
    assert payload["error"]["code"] == code
    assert payload["error"]["message"]
    assert payload["request_id"] == response.headers["x-request-id"]
    assert payload["timestamp"]
    assert settings.database_url
    assert counts(settings.database_url) == (0, 0)


async def test_unknown_connection_token_is_404(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            "/webhooks/kommo/not-a-token", data=message_form("m", "hi", lead_id=DEMO_LEAD_ID)
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert settings.database_url
    assert counts(settings.database_url) == (0, 0)


async def test_unknown_routes_and_methods_use_the_error_body(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        missing = await client.get("/api/v1/nothing-here")
        wrong_method = await client.get("/webhooks/kommo/anything")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"


# A webhook carrying one event of every family, as Kommo batches them (shapes: see
# tests/unit/test_webhook_parsing.py), plus an event type we do not know.
EVERY_FAMILY = {
    "leads[status][0][id]": str(DEMO_LEAD_ID),
    "leads[status][0][status_id]": "142",
    "leads[status][0][old_status_id]": "1001",
    "leads[status][0][last_modified]": "1739790000",
    "leads[status][0][custom_fields][0][id]": "66339",
    "leads[status][0][custom_fields][0][values][0][value]": "Website",
    "contacts[add][0][id]": "1001",
    "contacts[add][0][name]": "Ann",
    "companies[update][0][id]": "33001",
    "task[add][0][id]": "5001",
    "task[add][0][element_id]": str(DEMO_LEAD_ID),
    "task[add][0][element_type]": "2",
    "talk[add][0][talk_id]": "11",
    "talk[add][0][entity_id]": str(DEMO_LEAD_ID),
    "talk[add][0][entity_type]": "lead",
    "unsorted[add][0][uid]": "7b0a1f4c9d2e",
    "unsorted[add][0][lead_id]": str(DEMO_LEAD_ID),
    "catalogs[add][0][id]": "1",
    **message_form("msg-all", "Is it in stock?", lead_id=DEMO_LEAD_ID),
}


async def test_every_family_is_stored_at_once_and_only_the_customer_message_and_task_get_jobs(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    assert settings.database_url
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}", data=EVERY_FAMILY
        )
        retried = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=EVERY_FAMILY)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "accepted": 2, "duplicates": 0, "ignored": 6}
    assert retried.json() == {"status": "ok", "accepted": 0, "duplicates": 8, "ignored": 0}
    stored = {
        (family, action): status for _, status, family, action in inbox(settings.database_url)
    }
    assert stored == {
        ("leads", "status"): "ignored",
        ("contacts", "add"): "ignored",
        ("companies", "update"): "ignored",
        ("tasks", "add"): "pending",
        ("talks", "add"): "ignored",
        ("unsorted", "add"): "ignored",
        ("unknown", "unknown"): "ignored",
        ("messages", "add"): "pending",
    }
    assert counts(settings.database_url) == (8, 2)


async def test_a_second_change_of_the_same_lead_is_a_new_event(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    first = {"leads[update][0][id]": "7", "leads[update][0][last_modified]": "1739790000"}
    second = {"leads[update][0][id]": "7", "leads[update][0][last_modified]": "1739790060"}
    async with httpx.AsyncClient(base_url=api_url) as client:
        for body in (first, first, second):
            response = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=body)
            assert response.status_code == 200
    assert settings.database_url
    assert counts(settings.database_url) == (2, 0)


async def test_an_unknown_event_is_stored_ignored_and_acknowledged(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data={"whatsapp_template[review][0][id]": "9", "account[id]": "30000001"},
        )
    assert response.status_code == 200
    assert response.json()["ignored"] == 1
    assert settings.database_url
    assert inbox(settings.database_url)[0][1:] == ("ignored", "unknown", "unknown")
    assert counts(settings.database_url) == (1, 0)


async def test_a_picture_without_text_is_kept_but_not_answered(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    form = message_form("msg-pic", "", lead_id=DEMO_LEAD_ID)
    del form["message[add][0][text]"]
    form["message[add][0][attachment][type]"] = "picture"
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
    assert response.json()["ignored"] == 1
    assert settings.database_url
    assert counts(settings.database_url) == (1, 0)


async def test_with_the_salesbot_channel_messages_wait_for_the_bots_widget_request(
    api_url: str, connected: ConnectedAgent, settings: Settings, services: Services
) -> None:
    await use_reply_channel(services, connected.connection_id, "salesbot")
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("msg-sb", "Hello?", lead_id=DEMO_LEAD_ID),
        )
    assert response.json()["ignored"] == 1
    assert settings.database_url
    assert counts(settings.database_url) == (1, 0)


# --- Salesbot widget_request ------------------------------------------------------------------


def widget_request(continue_id: int = 654, text: str = "Do you ship abroad?") -> dict[str, object]:
    """A widget_request as Kommo's Salesbot posts it (Kommo, "Private Chatbot integration")."""
    return {
        "token": "eyJhbGciOiJIUzI1NiJ9.eyJhY2NvdW50X2lkIjozMDAwMDAwMX0.c2lnbmF0dXJl",
        "data": {"message": text, "lead_id": str(DEMO_LEAD_ID)},
        "return_url": f"https://sandbox.kommo.com/api/v4/salesbot/321/continue/{continue_id}",
    }


async def test_a_widget_request_is_stored_with_its_job_once(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    path = f"/webhooks/kommo/{connected.webhook_token}/salesbot"
    async with httpx.AsyncClient(base_url=api_url) as client:
        first = await client.post(path, json=widget_request())
        again = await client.post(path, json=widget_request())
    assert (first.status_code, again.status_code) == (200, 200)
    assert (first.json()["accepted"], again.json()["duplicates"]) == (1, 1)
    assert settings.database_url
    assert counts(settings.database_url) == (1, 1)
    with psycopg.connect(libpq_url(settings.database_url)) as connection:
        row = connection.execute(
            "SELECT dedupe_key, status, payload->'salesbot', payload->'message'->>'text' "
            "FROM inbox_events"
        ).fetchone()
    assert row == (
        "salesbot:321:654",
        "pending",
        {"bot_id": 321, "continue_id": 654},
        "Do you ship abroad?",
    )


async def test_a_form_encoded_widget_request_is_accepted(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}/salesbot",
            data={
                "token": "abc",
                "data[message]": "Hi",
                "data[lead_id]": str(DEMO_LEAD_ID),
                "return_url": "https://sandbox.kommo.com/api/v4/salesbot/1/continue/2",
            },
        )
    assert response.json()["accepted"] == 1
    assert settings.database_url
    assert counts(settings.database_url) == (1, 1)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"data": {"message": "hi", "lead_id": "1"}}', "application/json"),
        (b'{"data": ', "application/json"),
        (b"[1, 2]", "application/json"),
        (
            b'{"data": {"message": "hi\\u0000", "lead_id": "1"}, "return_url": '
            b'"https://a.kommo.com/api/v4/salesbot/1/continue/2"}',
            "application/json",
        ),
        (b"token=x&data[message]=hi", "application/x-www-form-urlencoded"),
        (b"hello", "text/plain"),
    ],
)
async def test_bad_widget_requests_get_a_400_and_change_nothing(
    api_url: str, connected: ConnectedAgent, settings: Settings, body: bytes, content_type: str
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}/salesbot",
            content=body,
            headers={"Content-Type": content_type},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    assert settings.database_url
    assert counts(settings.database_url) == (0, 0)


async def test_a_widget_request_to_an_unknown_address_is_404(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post("/webhooks/kommo/nope/salesbot", json=widget_request())
    assert response.status_code == 404
    assert settings.database_url
    assert counts(settings.database_url) == (0, 0)
