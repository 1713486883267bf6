"""POST /webhooks/kommo/{token}: inbox row and job in one transaction; bad input changes nothing."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from agent_platform.config import Settings
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.urls import libpq_url
from tests.support.factories import ConnectedAgent, message_form


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


async def test_manager_messages_are_not_answered(
    api_url: str, connected: ConnectedAgent, settings: Settings
) -> None:
    form = message_form("msg-out", "We will call you", lead_id=DEMO_LEAD_ID, direction="outgoing")
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
    assert response.json()["ignored"] == 1
    assert settings.database_url
    assert counts(settings.database_url) == (0, 0)


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
