"""Listing tasks and calls: filters, newest first, cursor pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agent_platform.crm.sandbox.store import DEMO_CONTACT_PHONE, DEMO_LEAD_ID, MANAGER_USER_ID
from agent_platform.services import Services
from tests.support.agents import assert_error
from tests.support.crm_records import CALLS, TASKS, created, due_in, task_request
from tests.support.factories import ConnectedAgent
from tests.support.jobs import run_queued_jobs

OTHER_LEAD_ID = 4_242


async def listed(api: httpx.AsyncClient, path: str, **params: Any) -> list[str]:
    """The ids a list shows with these filters, page after page."""
    ids: list[str] = []
    cursor = None
    while True:
        response = await api.get(path, params=params | ({"cursor": cursor} if cursor else {}))
        assert response.status_code == 200, response.text
        page = response.json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def mirrored_from_kommo(
    services: Services, api: httpx.AsyncClient, connected: ConnectedAgent
) -> str:
    """A task a manager made in Kommo, which its webhook brought here."""
    response = await api.post(
        f"/webhooks/kommo/{connected.webhook_token}",
        data={
            "task[add][0][id]": "770001",
            "task[add][0][element_id]": str(DEMO_LEAD_ID),
            "task[add][0][element_type]": "2",
            "task[add][0][text]": "Made in Kommo",
            "task[add][0][status]": "0",
            "task[add][0][complete_till]": str(int(due_in(1).timestamp())),
            "task[add][0][responsible_user_id]": str(MANAGER_USER_ID),
            "account[id]": "30000001",
        },
    )
    assert response.status_code == 200, response.text
    await run_queued_jobs(services)
    [task] = (await api.get(TASKS, params={"source": "kommo"})).json()["items"]
    return str(task["id"])


async def test_tasks_are_filtered(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    soon = (await created(acme, TASKS, task_request(complete_till=due_in(2).isoformat())))["id"]
    later = (await created(acme, TASKS, task_request(complete_till=due_in(72).isoformat())))["id"]
    managers = (await created(acme, TASKS, task_request(responsible_user_id=MANAGER_USER_ID)))["id"]
    elsewhere = (await created(acme, TASKS, task_request(lead_id=OTHER_LEAD_ID)))["id"]
    done = (await created(acme, TASKS, task_request()))["id"]
    assert (await acme.post(f"{TASKS}/{done}/complete")).status_code == 200
    from_kommo = await mirrored_from_kommo(services, acme, connected)

    assert await listed(acme, TASKS, lead_id=OTHER_LEAD_ID) == [elsewhere]
    assert set(await listed(acme, TASKS, lead_id=DEMO_LEAD_ID)) == {
        soon,
        later,
        managers,
        done,
        from_kommo,
    }
    assert await listed(acme, TASKS, status="completed") == [done]
    assert set(await listed(acme, TASKS, status="open")) == {
        soon,
        later,
        managers,
        elsewhere,
        from_kommo,
    }
    assert await listed(acme, TASKS, responsible_user_id=MANAGER_USER_ID) == [
        from_kommo,
        managers,
    ]
    assert await listed(acme, TASKS, source="kommo") == [from_kommo]
    assert from_kommo not in await listed(acme, TASKS, source="platform")
    assert set(await listed(acme, TASKS, due_before=due_in(3).isoformat())) == {
        soon,
        from_kommo,
    }
    assert await listed(
        acme, TASKS, due_after=due_in(48).isoformat(), due_before=due_in(96).isoformat()
    ) == [later]


async def test_tasks_come_newest_first_in_pages(acme: httpx.AsyncClient) -> None:
    made = [(await created(acme, TASKS, task_request(text=f"Task {n}")))["id"] for n in range(5)]

    first = (await acme.get(TASKS, params={"limit": 2})).json()
    second = (await acme.get(TASKS, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    third = (await acme.get(TASKS, params={"limit": 2, "cursor": second["next_cursor"]})).json()

    pages = [[item["id"] for item in page["items"]] for page in (first, second, third)]
    assert pages == [made[4:2:-1], made[2:0:-1], made[0:1]]
    assert third["next_cursor"] is None
    assert await listed(acme, TASKS) == made[::-1]  # the default page holds them all


async def test_a_page_is_not_shifted_by_rows_added_meanwhile(acme: httpx.AsyncClient) -> None:
    made = [(await created(acme, TASKS, task_request(text=f"Task {n}")))["id"] for n in range(3)]
    first = (await acme.get(TASKS, params={"limit": 2})).json()

    await created(acme, TASKS, task_request(text="Added between two pages"))
    second = (await acme.get(TASKS, params={"limit": 2, "cursor": first["next_cursor"]})).json()

    assert [item["id"] for item in second["items"]] == [made[0]]


async def test_calls_are_filtered_and_paged(acme: httpx.AsyncClient) -> None:
    base = {"phone": DEMO_CONTACT_PHONE, "duration": 30, "source": "acme-telephony"}
    outbound = (await created(acme, CALLS, base | {"direction": "outbound"}))["id"]
    inbound = await created(acme, CALLS, base | {"direction": "inbound"})
    for_lead = (
        await created(acme, CALLS, base | {"direction": "inbound", "lead_id": OTHER_LEAD_ID})
    )["id"]
    between = inbound["created_at"]

    assert await listed(acme, CALLS, direction="outbound") == [outbound]
    assert await listed(acme, CALLS, direction="inbound") == [for_lead, inbound["id"]]
    assert await listed(acme, CALLS, lead_id=OTHER_LEAD_ID) == [for_lead]
    assert await listed(acme, CALLS, since=between) == [for_lead, inbound["id"]]
    assert await listed(acme, CALLS, until=between) == [outbound]
    assert await listed(acme, CALLS, limit=1) == [for_lead, inbound["id"], outbound]


@pytest.mark.parametrize("path", [TASKS, CALLS])
@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
        ({"cursor": "eyJ0IjogIjIwMjYtMDEtMDFUMDA6MDA6MDAifQ"}, 400, "invalid_cursor"),
        ({"limit": 101}, 422, "validation_error"),
        ({"limit": 0}, 422, "validation_error"),
        ({"lead_id": "abc"}, 422, "validation_error"),
        ({"lead_id": str(2**63)}, 422, "validation_error"),
    ],
)
async def test_a_bad_list_request_is_refused(
    acme: httpx.AsyncClient, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    assert_error(await acme.get(path, params=params), status, code)


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"status": "archived"}, "validation_error"),
        ({"source": "zapier"}, "validation_error"),
        ({"due_before": "2026-01-01T00:00:00"}, "validation_error"),  # no timezone
        ({"due_after": "tomorrow"}, "validation_error"),
    ],
)
async def test_a_bad_task_filter_is_refused(
    acme: httpx.AsyncClient, params: dict[str, Any], code: str
) -> None:
    assert_error(await acme.get(TASKS, params=params), 422, code)
