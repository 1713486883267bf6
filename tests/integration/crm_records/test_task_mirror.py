"""Kommo's task webhooks mirrored into crm_tasks: through the webhook endpoint, the inbox and
the job queue. Payloads have the shape of Kommo's live `task[...]` hooks (see
tests/unit/test_webhook_parsing.py)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from agent_platform.crm.records.task_sync import task_delivery_key
from agent_platform.crm.sandbox.store import DEMO_CONTACT_ID, DEMO_LEAD_ID, MANAGER_USER_ID
from agent_platform.services import Services
from tests.support.crm_records import TASKS, created, due_in, jobs, rows, task_request
from tests.support.factories import ConnectedAgent
from tests.support.jobs import run_queued_jobs

DEADLINE = int(due_in(24).timestamp())


def task_hook(action: str, kommo_id: int, **fields: str) -> dict[str, str]:
    """A `task[action]` webhook about one task, as Kommo form-encodes it; a field named
    `result.text` is sent as `…[result][text]`."""
    item = {"id": str(kommo_id)} | fields
    form = {
        f"task[{action}][0]" + "".join(f"[{part}]" for part in key.split(".")): value
        for key, value in item.items()
    }
    return form | {"account[id]": "30000001"}


def full_task(
    text: str = "Call back", status: str = "0", modified: int = 1_739_800_000
) -> dict[str, str]:
    return {
        "element_id": str(DEMO_LEAD_ID),
        "element_type": "2",
        "task_type": "1",
        "text": text,
        "status": status,
        "complete_till": str(DEADLINE),
        "responsible_user_id": str(MANAGER_USER_ID),
        "last_modified": str(modified),
    }


async def deliver(
    services: Services, api: httpx.AsyncClient, connected: ConnectedAgent, form: dict[str, str]
) -> dict[str, Any]:
    response = await api.post(f"/webhooks/kommo/{connected.webhook_token}", data=form)
    assert response.status_code == 200, response.text
    await run_queued_jobs(services)
    receipt: dict[str, Any] = response.json()
    return receipt


async def only_task(api: httpx.AsyncClient) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = (await api.get(TASKS)).json()["items"]
    assert len(tasks) == 1, tasks
    return tasks[0]


async def test_a_task_added_in_kommo_is_mirrored_once(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    hook = task_hook("add", 880001, **full_task())

    receipt = await deliver(services, acme, connected, hook)

    assert receipt["accepted"] == 1
    task = await only_task(acme)
    assert {
        key: task[key]
        for key in (
            "source",
            "kommo_id",
            "entity_type",
            "lead_id",
            "text",
            "task_type_id",
            "responsible_user_id",
            "status",
            "sync_status",
        )
    } == {
        "source": "kommo",
        "kommo_id": 880001,
        "entity_type": "leads",
        "lead_id": DEMO_LEAD_ID,
        "text": "Call back",
        "task_type_id": 1,
        "responsible_user_id": MANAGER_USER_ID,
        "status": "open",
        "sync_status": "synced",
    }
    assert task["complete_till"].startswith(due_in(24).date().isoformat())
    assert await rows(services, "SELECT status FROM inbox_events") == [("handled",)]
    assert await jobs(services) == [("mirror_kommo_task", "succeeded", 1)]

    again = await deliver(services, acme, connected, hook)

    assert (again["accepted"], again["duplicates"]) == (0, 1)
    assert await only_task(acme) == task


async def test_changes_apply_in_kommos_order_and_a_deletion_is_kept(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    await deliver(services, acme, connected, task_hook("add", 880002, **full_task()))
    completed = full_task("Call back", status="1", modified=1_739_800_600)
    await deliver(
        services,
        acme,
        connected,
        task_hook("update", 880002, **completed, **{"result.text": "Reached, will buy"}),
    )
    task = await only_task(acme)
    assert (task["status"], task["result_text"]) == ("completed", "Reached, will buy")
    assert task["completed_at"] is not None

    # Kommo sent an older change late: it does not undo the newer one.
    stale = full_task("Call back (old wording)", status="0", modified=1_739_800_300)
    await deliver(services, acme, connected, task_hook("update", 880002, **stale))
    assert await only_task(acme) == task

    await deliver(services, acme, connected, task_hook("delete", 880002))
    deleted = await only_task(acme)
    assert (deleted["status"], deleted["text"]) == ("deleted", "Call back")


async def test_an_update_without_every_field_keeps_the_others(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    await deliver(services, acme, connected, task_hook("add", 880003, **full_task()))

    moved = {"element_id": str(DEMO_CONTACT_ID), "element_type": "1", "last_modified": "1739900000"}
    await deliver(services, acme, connected, task_hook("update", 880003, **moved))

    task = await only_task(acme)
    assert (task["entity_type"], task["entity_id"], task["text"], task["status"]) == (
        "contacts",
        DEMO_CONTACT_ID,
        "Call back",
        "open",
    )


async def test_kommos_news_of_a_task_we_created_updates_its_row(
    services: Services,
    acme: httpx.AsyncClient,
    kommo: httpx.AsyncClient,
    connected: ConnectedAgent,
) -> None:
    mine = await created(acme, TASKS, task_request())
    await run_queued_jobs(services)
    kommo_id = (await acme.get(f"{TASKS}/{mine['id']}")).json()["kommo_id"]

    # A manager completes it in Kommo.
    done = full_task("Call the customer back", status="1", modified=1_900_000_000)
    await deliver(services, acme, connected, task_hook("update", kommo_id, **done))

    task = await only_task(acme)
    assert (task["id"], task["source"], task["status"]) == (mine["id"], "platform", "completed")


async def test_kommos_add_hook_before_our_push_noted_the_id_leaves_one_row(
    services: Services,
    acme: httpx.AsyncClient,
    kommo: httpx.AsyncClient,
    connected: ConnectedAgent,
) -> None:
    due = due_in(24)
    # Our push reached Kommo, which sent its `task[add]` hook before the push was noted.
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
    kommo_id = response.json()["_embedded"]["tasks"][0]["id"]
    hook = task_hook("add", kommo_id, **full_task("Call the customer back"))
    assert (await acme.post(f"/webhooks/kommo/{connected.webhook_token}", data=hook)).json()[
        "accepted"
    ] == 1
    mine = await created(acme, TASKS, task_request(complete_till=due.isoformat()))
    await rows(
        services,
        "UPDATE crm_deliveries SET attempts = 1 WHERE idempotency_key = :key RETURNING id",
        key=task_delivery_key(uuid.UUID(mine["id"])),
    )

    await run_queued_jobs(services)

    assert await jobs(services) == [
        ("mirror_kommo_task", "succeeded", 1),
        ("push_crm_task", "succeeded", 1),
    ]
    task = await only_task(acme)
    assert (task["id"], task["source"], task["kommo_id"], task["sync_status"]) == (
        mine["id"],
        "platform",
        kommo_id,
        "synced",
    )


async def test_a_task_made_in_kommo_is_a_task_created_event_once(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    trigger = await created(
        acme,
        "/api/v1/triggers",
        {
            "name": "Tasks made in Kommo",
            "event": {"type": "task_created"},
            "actions": [{"type": "wait", "minutes": 5}],
        },
    )
    await deliver(services, acme, connected, task_hook("add", 880003, **full_task()))
    # The same task changed later is no new task.
    later = full_task(text="Call back tomorrow", modified=1_739_900_000)
    await deliver(services, acme, connected, task_hook("update", 880003, **later))

    runs = (await acme.get("/api/v1/automation/runs", params={"trigger_id": trigger["id"]})).json()
    [run] = runs["items"]
    assert run["event"]["data"]["text"] == "Call back"
