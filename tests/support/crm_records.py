"""CRM tasks and calls in tests: the API's paths, requests it accepts, and what the database
and the sandbox hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text

from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services

TASKS = "/api/v1/crm/tasks"
CALLS = "/api/v1/crm/calls"
# Every table a refused request must leave untouched.
WRITTEN_BY_CREATING = ("crm_tasks", "crm_calls", "crm_deliveries", "procrastinate_jobs")


def due_in(hours: float) -> datetime:
    """A deadline, to the second (Kommo keeps whole seconds)."""
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0)


def task_request(**fields: Any) -> dict[str, Any]:
    """A valid task on the sandbox's demo lead, with `fields` changed."""
    return {
        "lead_id": DEMO_LEAD_ID,
        "text": "Call the customer back",
        "complete_till": due_in(24).isoformat(),
    } | fields


async def created(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


async def rows(services: Services, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
    async with transaction(services.sessions) as session:
        return [tuple(row) for row in await session.execute(text(sql), parameters)]


async def counts(services: Services) -> dict[str, int]:
    """How many rows each table a create writes holds."""
    found = {}
    for table in WRITTEN_BY_CREATING:
        [(count,)] = await rows(services, f"SELECT count(*) FROM {table}")  # noqa: S608
        found[table] = count
    return found


async def jobs(services: Services) -> list[tuple[str, str, int]]:
    """(task name, status, attempts) of every job, in the order deferred."""
    found = await rows(
        services, "SELECT task_name, status::text, attempts FROM procrastinate_jobs ORDER BY id"
    )
    return [(str(name), str(status), int(attempts)) for name, status, attempts in found]


async def kommo_tasks(kommo: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every task in the sandbox (Kommo answers 204 when there is none)."""
    response = await kommo.get("/api/v4/tasks", params={"limit": 250})
    response.raise_for_status()
    if response.status_code == httpx.codes.NO_CONTENT:
        return []
    tasks: list[dict[str, Any]] = response.json()["_embedded"]["tasks"]
    return tasks
