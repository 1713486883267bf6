"""A worker killed in the middle of a job: the job is recovered and the customer gets one reply.

The first test kills a real worker process (SIGKILL: no cleanup, no goodbye) while it waits
for the language model, and lets a second worker recover the job through stalled-job
detection. The others run the job's retry path in-process, where a delivery is left
`pending` after an attempt that may or may not have reached Kommo.
"""

from __future__ import annotations

import signal
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psycopg

from agent_platform.agent.service import answer_inbox_event, reply_key
from agent_platform.config import Settings
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import CrmDelivery, DeliveryStatus
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.db.urls import libpq_url
from agent_platform.services import Services
from tests.conftest import free_port
from tests.support.factories import ConnectedAgent, message_form
from tests.support.processes import eventually_async, running, settings_env

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers
WORKER_START_TIMEOUT = 60.0
RECOVERY_TIMEOUT = 45.0


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.database_url
    with psycopg.connect(libpq_url(settings.database_url)) as connection:
        return connection.execute(sql).fetchall()


def sandbox_notes(sandbox_url: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{sandbox_url}/sandbox/notes")
    response.raise_for_status()
    notes: list[dict[str, Any]] = response.json()["notes"]
    return notes


def chat_requests(fake_llm_url: str) -> list[dict[str, Any]]:
    recorded = httpx.get(f"{fake_llm_url}/_fake/requests").json()
    return [r for r in recorded if r["path"] == "/v1/chat/completions"]


def configure_fake_llm(fake_llm_url: str, **config: Any) -> None:
    httpx.post(f"{fake_llm_url}/_fake/config", json=config).raise_for_status()


async def test_job_of_a_killed_worker_is_recovered_and_answered_once(
    settings: Settings,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    fake_llm_url: str,
    tmp_path: Path,
) -> None:
    sandbox_url = sandbox[0]
    configure_fake_llm(fake_llm_url, delay_seconds=30)
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("crash-1", "What does it cost?", lead_id=DEMO_LEAD_ID),
        )
    assert response.json()["accepted"] == 1

    with running(["worker"], env=settings_env(settings), cwd=tmp_path, name="worker-1") as first:
        # The job runs and the worker is waiting for the (slow) model: kill it right there.
        await eventually_async(
            lambda: (
                query(settings, "SELECT status FROM procrastinate_jobs") == [("doing",)]
                and len(chat_requests(fake_llm_url)) == 1
            ),
            within=WORKER_START_TIMEOUT,
            message=lambda: "the job never reached the LLM: " + first.describe(),
        )
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert sandbox_notes(sandbox_url) == []
    assert query(settings, "SELECT status FROM procrastinate_jobs") == [("doing",)]

    configure_fake_llm(fake_llm_url, delay_seconds=0)
    second_env = settings_env(settings, WORKER_HEALTH_PORT=str(free_port()))
    with running(["worker"], env=second_env, cwd=tmp_path, name="worker-2") as second:
        notes = await eventually_async(
            lambda: sandbox_notes(sandbox_url) or None,
            within=RECOVERY_TIMEOUT,
            message=lambda: "the job was not recovered: " + second.describe(),
        )
        await eventually_async(
            lambda: query(settings, "SELECT status FROM procrastinate_jobs") == [("succeeded",)],
            within=RECOVERY_TIMEOUT,
            message=lambda: "the job did not succeed: " + second.describe(),
        )
        assert "stalled_job_requeued" in second.stderr()

    assert len(notes) == 1
    assert notes[0]["params"]["text"] == LLM_REPLY
    assert notes[0]["entity_id"] == DEMO_LEAD_ID
    assert sandbox_notes(sandbox_url) == notes
    assert query(settings, "SELECT status FROM inbox_events") == [("handled",)]
    assert query(settings, "SELECT status, external_id, attempts FROM crm_deliveries") == [
        ("sent", notes[0]["id"], 1)
    ]
    # The dead attempt recorded the customer's message; the retry did not record it again.
    assert query(settings, "SELECT role FROM messages ORDER BY created_at") == [
        ("user",),
        ("assistant",),
    ]
    assert len(chat_requests(fake_llm_url)) == 2


async def _pending_delivery(
    services: Services, connected: ConnectedAgent, *, text: str, attempts: int
) -> uuid.UUID:
    """An inbox event whose reply is stored but not known to be sent, as a dead attempt left it."""
    message = IncomingMessage(
        message_id=f"msg-{uuid.uuid4().hex[:8]}",
        text="Do you deliver on Sundays?",
        chat_id="chat-1",
        talk_id=11,
        contact_id=1001,
        entity_type="leads",
        entity_id=DEMO_LEAD_ID,
        direction="incoming",
    )
    async with transaction(services.sessions) as session:
        event_id = await crm.insert_inbox_event_if_new(
            session,
            target=crm.WebhookTarget(connected.connection_id, connected.organization_id),
            source="kommo",
            dedupe_key=message.dedupe_key,
            payload={"message": asdict(message), "account_id": 30000001},
            request_id=None,
        )
        assert event_id is not None
        await crm.add_delivery(
            session,
            CrmDelivery(
                organization_id=connected.organization_id,
                connection_id=connected.connection_id,
                idempotency_key=reply_key(event_id),
                kind="note",
                entity_type="leads",
                entity_id=DEMO_LEAD_ID,
                payload={"text": text},
                status=DeliveryStatus.PENDING.value,
                attempts=attempts,
            ),
        )
    return event_id


async def test_retry_finds_the_note_an_earlier_attempt_sent(
    services: Services,
    settings: Settings,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    fake_llm_url: str,
) -> None:
    sandbox_url, token = sandbox
    text = "Yes, we deliver on Sundays."
    event_id = await _pending_delivery(services, connected, text=text, attempts=1)
    # The earlier attempt reached Kommo, then its worker died before marking the delivery sent.
    async with httpx.AsyncClient() as client:
        created = await client.post(
            f"{sandbox_url}/api/v4/leads/notes",
            json=[{"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": text}}],
            headers={"Authorization": f"Bearer {token}"},
        )
    created.raise_for_status()
    note_id = created.json()["_embedded"]["notes"][0]["id"]

    await answer_inbox_event(services, event_id)

    notes = sandbox_notes(sandbox_url)
    assert [(note["id"], note["params"]["text"]) for note in notes] == [(note_id, text)]
    assert query(settings, "SELECT status, external_id, attempts FROM crm_deliveries") == [
        ("sent", note_id, 1)
    ]
    assert query(settings, "SELECT status FROM inbox_events") == [("handled",)]
    assert chat_requests(fake_llm_url) == [], "the stored reply is sent, not generated again"


async def test_retry_sends_the_note_an_earlier_attempt_did_not(
    services: Services,
    settings: Settings,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    fake_llm_url: str,
) -> None:
    sandbox_url, _ = sandbox
    text = "Yes, on Sundays too."
    event_id = await _pending_delivery(services, connected, text=text, attempts=1)

    await answer_inbox_event(services, event_id)
    await answer_inbox_event(services, event_id)  # a duplicate run of the job changes nothing

    notes = sandbox_notes(sandbox_url)
    assert [note["params"]["text"] for note in notes] == [text]
    assert query(settings, "SELECT status, external_id, attempts FROM crm_deliveries") == [
        ("sent", notes[0]["id"], 2)
    ]
    assert query(settings, "SELECT status FROM inbox_events") == [("handled",)]
    assert chat_requests(fake_llm_url) == []


async def test_an_older_note_with_the_same_words_is_not_taken_for_this_reply(
    services: Services,
    settings: Settings,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
) -> None:
    sandbox_url, token = sandbox
    text = "Thank you!"
    # Yesterday's identical reply is on the lead already...
    async with httpx.AsyncClient() as client:
        created = await client.post(
            f"{sandbox_url}/api/v4/leads/notes",
            json=[{"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": text}}],
            headers={"Authorization": f"Bearer {token}"},
        )
    created.raise_for_status()
    older_note_id = created.json()["_embedded"]["notes"][0]["id"]
    # ...and today's reply was planned later, then its first attempt died before answering.
    event_id = await _pending_delivery(services, connected, text=text, attempts=1)
    with psycopg.connect(libpq_url(settings.database_url or "")) as connection:
        connection.execute("UPDATE crm_deliveries SET created_at = now() + interval '1 hour'")

    await answer_inbox_event(services, event_id)

    notes = [note for note in sandbox_notes(sandbox_url) if note["params"]["text"] == text]
    assert len(notes) == 2
    [(status, external_id)] = query(settings, "SELECT status, external_id FROM crm_deliveries")
    assert status == "sent"
    assert external_id != older_note_id
