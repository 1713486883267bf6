"""The automation API in tests: its paths, valid bodies to vary, and what the tables hold."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text

from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.crm_records import created as created  # the tests import it from here

RULES = "/api/v1/rules"
TRIGGERS = "/api/v1/triggers"
SEQUENCES = "/api/v1/sequences"
ENROLLMENTS = "/api/v1/automation/enrollments"
RUNS = "/api/v1/automation/runs"
# Every table an automation request may write: a refused one leaves them as they were.
AUTOMATION_TABLES = (
    "automation_rules",
    "automation_triggers",
    "automation_sequences",
    "automation_enrollments",
    "automation_runs",
    "procrastinate_jobs",
)

HOT_LEAD = {"field": "lead.price", "operator": "gte", "value": 1000}


async def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


async def counts(services: Services) -> dict[str, int]:
    found = {}
    async with transaction(services.sessions) as session:
        for table in AUTOMATION_TABLES:
            found[table] = await session.scalar(text(f"SELECT count(*) FROM {table}"))  # noqa: S608
    return found


def trigger_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Hot lead moved",
        "event": {"type": "lead_status_changed"},
        "conditions": {"all": [HOT_LEAD]},
        "actions": [{"type": "send_message", "text": "Hello, {{ lead.name }}!"}],
    } | fields


def sequence_body(**fields: Any) -> dict[str, Any]:
    return {
        "name": "Warm-up",
        "steps": [
            {
                "name": "first touch",
                "delay": {"after_minutes": 60},
                "conditions": None,
                "actions": [{"type": "send_message", "text": "Still there, {{ lead.name }}?"}],
            }
        ],
        "stop_on": {"lead_replied": True},
    } | fields


async def all_pages(api: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, walked a page of `limit` at a time."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = await ok(await api.get(path, params=params | ({"cursor": cursor} if cursor else {})))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
