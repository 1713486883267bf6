"""CRM tasks through the REST API, pushed to the Kommo sandbox by the real job queue."""

from __future__ import annotations

import uuid
from datetime import datetime

import httpx
import pytest

from agent_platform.crm.records.task_sync import task_delivery_key
from agent_platform.crm.sandbox.store import DEMO_CONTACT_ID, DEMO_LEAD_ID, MANAGER_USER_ID
from agent_platform.services import Services
from tests.support.agents import assert_error
from tests.support.crm_records import (
    TASKS,
    created,
    due_in,
    jobs,
    kommo_tasks,
    rows,
    task_request,
)
from tests.support.jobs import run_queued_jobs


async def test_a_created_task_reaches_kommo_and_the_row_shows_its_id(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    due = due_in(48)
    task = await created(
        acme,
        TASKS,
        task_request(
            text="Send the quote",
            complete_till=due.isoformat(),
            task_type_id=2,
            responsible_user_id=MANAGER_USER_ID,
        ),
    )
    assert (task["sync_status"], task["kommo_id"], task["source"], task["status"]) == (
        "pending",
        None,
        "platform",
        "open",
    )
    assert (task["entity_type"], task["entity_id"], task["lead_id"]) == (
        "leads",
        DEMO_LEAD_ID,
        DEMO_LEAD_ID,
    )
    # Stored with its delivery and its job, before anything reached Kommo.
    assert await rows(
        services,
        "SELECT status, attempts FROM crm_deliveries WHERE idempotency_key = :key",
        key=task_delivery_key(uuid.UUID(task["id"])),
    ) == [("pending", 0)]
    assert await jobs(services) == [("push_crm_task", "todo", 0)]

    await run_queued_jobs(services)

    synced = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert synced["sync_status"] == "synced"
    in_kommo = (await kommo.get(f"/api/v4/tasks/{synced['kommo_id']}")).json()
    assert {
        key: in_kommo[key]
        for key in (
            "text",
            "complete_till",
            "task_type_id",
            "responsible_user_id",
            "entity_type",
            "entity_id",
            "is_completed",
        )
    } == {
        "text": "Send the quote",
        "complete_till": int(due.timestamp()),
        "task_type_id": 2,
        "responsible_user_id": MANAGER_USER_ID,
        "entity_type": "leads",
        "entity_id": DEMO_LEAD_ID,
        "is_completed": False,
    }
    assert await jobs(services) == [("push_crm_task", "succeeded", 1)]


async def test_a_task_on_a_contact_is_set_on_it(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    body = task_request(entity_type="contacts", entity_id=DEMO_CONTACT_ID)
    del body["lead_id"]
    task = await created(acme, TASKS, body)

    await run_queued_jobs(services)

    [in_kommo] = await kommo_tasks(kommo)
    assert (in_kommo["entity_type"], in_kommo["entity_id"]) == ("contacts", DEMO_CONTACT_ID)
    synced = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert (synced["kommo_id"], synced["lead_id"]) == (in_kommo["id"], None)


async def _as_if_an_attempt_died(services: Services, task_id: str) -> None:
    """What a worker killed mid-push leaves: its attempt counted, the delivery not sent."""
    await rows(
        services,
        "UPDATE crm_deliveries SET attempts = 1 WHERE idempotency_key = :key RETURNING id",
        key=task_delivery_key(uuid.UUID(task_id)),
    )


async def test_a_retry_finds_the_task_the_dead_attempt_created(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    due = due_in(24)
    task = await created(acme, TASKS, task_request(complete_till=due.isoformat()))
    await _as_if_an_attempt_died(services, task["id"])
    # The dead attempt had reached Kommo before its worker died.
    response = await kommo.post(
        "/api/v4/tasks",
        json=[
            {
                "text": "Call the customer back",
                "complete_till": int(due.timestamp()),
                "entity_type": "leads",
                "entity_id": DEMO_LEAD_ID,
                "task_type_id": 1,
            }
        ],
    )
    response.raise_for_status()
    created_by_dead_attempt = response.json()["_embedded"]["tasks"][0]["id"]

    await run_queued_jobs(services)

    assert [t["id"] for t in await kommo_tasks(kommo)] == [created_by_dead_attempt]
    synced = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert (synced["kommo_id"], synced["sync_status"]) == (created_by_dead_attempt, "synced")
    assert await rows(services, "SELECT status, attempts FROM crm_deliveries") == [("sent", 1)]


async def test_a_retry_creates_the_task_the_dead_attempt_did_not(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request())
    await _as_if_an_attempt_died(services, task["id"])
    # An older task with the same words is another task, not this one's earlier attempt.
    await kommo.post(
        "/api/v4/tasks",
        json=[{"text": "Call the customer back", "complete_till": 1_700_000_000}],
    )

    await run_queued_jobs(services)

    mine = [t for t in await kommo_tasks(kommo) if t["entity_id"] == DEMO_LEAD_ID]
    assert len(mine) == 1
    synced = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert synced["kommo_id"] == mine[0]["id"]
    assert await rows(services, "SELECT status, attempts FROM crm_deliveries") == [("sent", 2)]


async def test_a_duplicate_run_of_the_job_creates_nothing_more(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request())
    await run_queued_jobs(services)
    await rows(
        services,
        "UPDATE procrastinate_jobs SET status = 'todo' WHERE task_name = 'push_crm_task' "
        "RETURNING id",
    )

    await run_queued_jobs(services)

    assert len(await kommo_tasks(kommo)) == 1
    assert (await acme.get(f"{TASKS}/{task['id']}")).json()["sync_status"] == "synced"


async def test_kommos_refusal_fails_the_task_with_kommos_words_and_no_retry(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request(lead_id=999_999))

    await run_queued_jobs(services)

    failed = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert (failed["sync_status"], failed["kommo_id"]) == ("failed", None)
    assert failed["sync_error"] == "entity_id: No leads with this id"
    assert await jobs(services) == [("push_crm_task", "failed", 1)]
    assert await kommo_tasks(kommo) == []


async def test_completing_pushes_the_completion_with_its_result(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request())
    await run_queued_jobs(services)

    response = await acme.post(
        f"{TASKS}/{task['id']}/complete", json={"result_text": "Agreed on Tuesday"}
    )
    assert response.status_code == 200, response.text
    completed = response.json()
    assert (completed["status"], completed["sync_status"], completed["result_text"]) == (
        "completed",
        "pending",
        "Agreed on Tuesday",
    )
    assert datetime.fromisoformat(completed["completed_at"]) >= datetime.fromisoformat(
        completed["created_at"]
    )

    await run_queued_jobs(services)

    in_kommo = (await kommo.get(f"/api/v4/tasks/{completed['kommo_id']}")).json()
    assert (in_kommo["is_completed"], in_kommo["result"]) == (True, {"text": "Agreed on Tuesday"})
    assert (await acme.get(f"{TASKS}/{task['id']}")).json()["sync_status"] == "synced"


async def test_a_task_completed_before_it_reached_kommo_reaches_it_completed(
    services: Services, acme: httpx.AsyncClient, kommo: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request())
    response = await acme.post(f"{TASKS}/{task['id']}/complete")
    assert response.status_code == 200, response.text

    await run_queued_jobs(services)

    [in_kommo] = await kommo_tasks(kommo)
    assert (in_kommo["is_completed"], in_kommo["result"]) == (True, [])
    done = (await acme.get(f"{TASKS}/{task['id']}")).json()
    assert (done["status"], done["sync_status"], done["kommo_id"]) == (
        "completed",
        "synced",
        in_kommo["id"],
    )


@pytest.mark.parametrize(
    ("prepare", "message"),
    [
        ("complete", "completed already"),
        ("never_in_kommo", "never reached Kommo"),
    ],
)
async def test_a_task_that_cannot_be_completed_is_refused_and_left_as_it_was(
    services: Services, acme: httpx.AsyncClient, prepare: str, message: str
) -> None:
    lead_id = DEMO_LEAD_ID if prepare == "complete" else 999_999
    task = await created(acme, TASKS, task_request(lead_id=lead_id))
    if prepare == "complete":
        assert (await acme.post(f"{TASKS}/{task['id']}/complete")).status_code == 200
    await run_queued_jobs(services)
    before = (await acme.get(f"{TASKS}/{task['id']}")).json()
    jobs_before = await jobs(services)

    response = await acme.post(f"{TASKS}/{task['id']}/complete", json={"result_text": "Again"})

    body = assert_error(response, 409, "task_not_completable")
    assert message in body["error"]["message"]
    assert (await acme.get(f"{TASKS}/{task['id']}")).json() == before
    assert await jobs(services) == jobs_before
