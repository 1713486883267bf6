"""Automation end to end, as an admin sets it up and Kommo drives it: the sandbox sends its real
webhooks to the api, a worker runs the jobs, the triggers and the sequence are made through
the REST API. The clock is controlled, not waited for: a step's job is made due by moving its
scheduled time to now (what the passing of an hour would do), never by sleeping.

- a status change fires a trigger that enrolls the lead; step 1 runs at its time and posts
  its message on the lead; the lead replies; the enrollment stops and step 2's job is
  cancelled;
- a trigger whose action causes the very event it listens to fires once, not again on its
  own echo.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from agent_platform.crm.sandbox.store import DEMO_LEAD_ID, INITIAL_CONTACT_STATUS_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.clients import integrator, sandbox_sending_webhooks
from tests.support.crm_records import created
from tests.support.factories import ConnectedAgent
from tests.support.processes import eventually_awaited
from tests.support.worker import running_worker

QUALIFIED_STATUS_ID = 7_000_013
NEGOTIATION_STATUS_ID = 7_000_014


@pytest.fixture
async def kommo(
    sandbox: tuple[str, str], api_url: str, connected: ConnectedAgent
) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox, sending lead and message webhooks to the platform's api."""
    destination = f"{api_url}/webhooks/kommo/{connected.webhook_token}"
    settings = ["status_lead", "update_lead", "add_message"]
    async with sandbox_sending_webhooks(sandbox, destination, settings) as kommo:
        # The test reads the sandbox while the platform writes to it: no 7 requests/s limit.
        await kommo.post("/sandbox/faults", json={"rate_limit": False})
        yield kommo


@pytest.fixture
async def api(
    api_url: str, services: Services, connected: ConnectedAgent
) -> AsyncIterator[httpx.AsyncClient]:
    async with integrator(services, connected.organization_id, api_url) as client:
        yield client


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


async def move_lead(kommo: httpx.AsyncClient, status_id: int) -> None:
    """A person moves the lead in Kommo."""
    response = await kommo.patch(
        "/api/v4/leads", json=[{"id": DEMO_LEAD_ID, "status_id": status_id}]
    )
    assert response.status_code == 200, response.text


async def lead_status(kommo: httpx.AsyncClient) -> int:
    status_id: int = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()["status_id"]
    return status_id


async def notes(kommo: httpx.AsyncClient) -> list[str]:
    found = (await kommo.get("/sandbox/notes")).json()["notes"]
    return [note["params"]["text"] for note in found]


async def step_jobs(services: Services) -> list[dict[str, Any]]:
    async with transaction(services.sessions) as session:
        rows = await session.execute(
            text(
                "SELECT id, status::text, scheduled_at, args FROM procrastinate_jobs "
                "WHERE task_name = 'run_sequence_step' ORDER BY id"
            )
        )
        return [dict(row._mapping) for row in rows]


async def make_due(services: Services, job_id: int) -> None:
    """The hour passes: the job's time is now."""
    async with transaction(services.sessions) as session:
        await session.execute(
            text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = :id"),
            {"id": job_id},
        )


async def runs(api: httpx.AsyncClient, **filters: str) -> list[dict[str, Any]]:
    response = await api.get("/api/v1/automation/runs", params={"limit": 100, **filters})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def enrollment_of(api: httpx.AsyncClient, sequence_id: str) -> dict[str, Any]:
    response = await api.get(f"/api/v1/sequences/{sequence_id}/enrollments")
    assert response.status_code == 200, response.text
    (enrollment,) = response.json()["items"]
    found: dict[str, Any] = enrollment
    return found


@pytest.mark.usefixtures("worker")
async def test_a_status_change_enrolls_the_lead_and_its_reply_stops_the_sequence(
    services: Services, kommo: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    sequence = await created(
        api,
        "/api/v1/sequences",
        {
            "name": "Warm-up after qualification",
            "steps": [
                {
                    "delay": {"after_minutes": 60},
                    "actions": [
                        {"type": "send_message", "text": "{{ lead.name }}: shall we book a call?"}
                    ],
                },
                {
                    "delay": {"after_minutes": 24 * 60},
                    "actions": [{"type": "add_note", "text": "Second nudge"}],
                },
            ],
            "stop_on": {"lead_replied": True, "won_or_lost": True},
        },
    )
    await created(
        api,
        "/api/v1/triggers",
        {
            "name": "Qualified leads get the warm-up",
            "event": {"type": "lead_status_changed"},
            "conditions": {
                "field": "event.to_status_id",
                "operator": "equals",
                "value": QUALIFIED_STATUS_ID,
            },
            "actions": [{"type": "start_sequence", "sequence_id": sequence["id"]}],
        },
    )
    moved_at = datetime.now(UTC)

    await move_lead(kommo, QUALIFIED_STATUS_ID)

    async def first_step_job() -> dict[str, Any] | None:
        jobs = await step_jobs(services)
        return jobs[0] if jobs else None

    job = await eventually_awaited(first_step_job, "the lead enrolled and step 1 scheduled")
    assert job["status"] == "todo"
    # Scheduled an hour after the enrollment, and nothing posted before its time.
    assert timedelta(minutes=59) < job["scheduled_at"] - moved_at < timedelta(minutes=61)
    enrollment = await enrollment_of(api, sequence["id"])
    assert enrollment["status"] == "active"
    assert not any("shall we book a call" in note for note in await notes(kommo))

    await make_due(services, job["id"])

    async def first_message() -> str | None:
        return next((n for n in await notes(kommo) if "shall we book a call" in n), None)

    message = await eventually_awaited(first_message, "step 1 posted its message")
    assert message == "Demo lead: shall we book a call?"

    async def second_step_job() -> dict[str, Any] | None:
        jobs = await step_jobs(services)
        return jobs[1] if len(jobs) == 2 else None

    pending = await eventually_awaited(second_step_job, "step 2 scheduled")
    assert pending["status"] == "todo"

    reply = await kommo.post(
        f"/sandbox/leads/{DEMO_LEAD_ID}/messages",
        data={"text": "Yes, tomorrow works", "author": "customer"},
    )
    assert reply.status_code == 303, reply.text

    async def stopped() -> dict[str, Any] | None:
        found = await enrollment_of(api, sequence["id"])
        return found if found["status"] == "stopped" else None

    ended = await eventually_awaited(stopped, "the enrollment stopped by the lead's reply")
    assert ended["stop_reason"] == "the lead replied"
    cancelled = next(j for j in await step_jobs(services) if j["id"] == pending["id"])
    assert cancelled["status"] == "cancelled"
    assert "Second nudge" not in await notes(kommo)


@pytest.mark.usefixtures("worker")
async def test_a_trigger_does_not_fire_again_on_the_change_its_own_action_made(
    services: Services, kommo: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    # Any stage change moves the lead on to negotiation: without loop protection, the move's
    # own webhook would fire it again.
    trigger = await created(
        api,
        "/api/v1/triggers",
        {
            "name": "Push every moved lead to negotiation",
            "event": {"type": "lead_status_changed"},
            "actions": [{"type": "move_stage", "status_id": NEGOTIATION_STATUS_ID}],
        },
    )

    await move_lead(kommo, INITIAL_CONTACT_STATUS_ID + 1)

    async def two_runs() -> list[dict[str, Any]] | None:
        found = await runs(api, trigger_id=trigger["id"])
        settled = [r for r in found if r["status"] not in ("running", "waiting")]
        return found if len(settled) >= 2 else None

    found = await eventually_awaited(two_runs, "the trigger's run and its echo's run")
    assert await lead_status(kommo) == NEGOTIATION_STATUS_ID
    fired = [r for r in found if r["status"] == "succeeded"]
    refused = [r for r in found if r["status"] == "skipped"]
    assert len(fired) == 1
    assert fired[0]["event"]["data"]["to_status_id"] == INITIAL_CONTACT_STATUS_ID + 1
    assert len(refused) == 1
    assert refused[0]["event"]["data"]["to_status_id"] == NEGOTIATION_STATUS_ID
    assert "loop" in refused[0]["error"]
