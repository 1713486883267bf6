"""/app/logs: what the platform did (the activity log), and the CRM tasks and calls it keeps,
one tab each, filtered and paged like the API's lists."""

from __future__ import annotations

import json
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.activity.repository import ActivityQuery
from agent_platform.crm.models import TaskSource, TaskStatus
from agent_platform.crm.records import service as crm_records
from agent_platform.crm.records.repository import CallQuery, TaskQuery
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.services import Services
from agent_platform.web.auth import CurrentUser
from agent_platform.web.conversation_pages import service
from agent_platform.web.conversation_pages.filters import (
    BadFilterError,
    kommo_id,
    one_of,
    page_request,
    text,
)
from agent_platform.web.conversation_pages.views import moment, page_link
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LOGS_PATH = "/app/logs"
TABS = ("activity", "tasks", "calls")
# Each tab's filters, by the query string's names.
TAB_FILTERS = {
    "activity": ("action", "entity_type", "entity_id"),
    "tasks": ("lead", "status", "source"),
    "calls": ("lead", "direction"),
}
TASK_STATUSES = [status.value for status in TaskStatus]
TASK_SOURCES = [source.value for source in TaskSource]
CALL_DIRECTIONS = ("inbound", "outbound")


@router.get(LOGS_PATH)
async def logs_page(request: Request, user: CurrentUser, tab: str = "activity") -> Response:
    if tab not in TABS:
        tab = "activity"
    given = request.query_params
    filters = {"tab": tab} | {name: given.get(name, "").strip() for name in TAB_FILTERS[tab]}
    cursor = given.get("cursor", "")
    context: dict[str, Any] = {
        "tab": tab,
        "tabs": TABS,
        "filters": filters,
        "task_statuses": TASK_STATUSES,
        "task_sources": TASK_SOURCES,
        "call_directions": CALL_DIRECTIONS,
        "rows": [],
        "next_url": None,
        "first_url": page_link(LOGS_PATH, filters) if cursor else None,
        "error_key": None,
        "moment": moment,
    }
    services: Services = request.app.state.services
    try:
        page = page_request(cursor)
        found = await _rows(services, user.organization_id, filters, page)
    except BadFilterError as refused:
        context["error_key"] = refused.key
        return render(request, "conversations/logs.html", status_code=400, **context)
    context["rows"] = found.items
    if tab == "activity":
        context["details"] = {row.id: _details(row.details) for row in found.items}
    if found.next_cursor is not None:
        context["next_url"] = page_link(LOGS_PATH, filters, cursor=found.next_cursor)
    return render(request, "conversations/logs.html", **context)


async def _rows(
    services: Services, organization_id: uuid.UUID, filters: dict[str, str], page: PageRequest
) -> RowsPage[Any]:
    """The tab's page of rows; BadFilterError for a filter the tab cannot read."""
    if filters["tab"] == "tasks":
        status = one_of(filters["status"], TASK_STATUSES, "conversations.bad_status")
        source = one_of(filters["source"], TASK_SOURCES, "conversations.bad_source")
        task_query = TaskQuery(
            lead_id=kommo_id(filters["lead"], "conversations.bad_lead"),
            status=None if status is None else TaskStatus(status),
            source=None if source is None else TaskSource(source),
        )
        return await crm_records.list_tasks(services, organization_id, task_query, page)
    if filters["tab"] == "calls":
        call_query = CallQuery(
            lead_id=kommo_id(filters["lead"], "conversations.bad_lead"),
            direction=one_of(filters["direction"], CALL_DIRECTIONS, "conversations.bad_direction"),
        )
        return await crm_records.list_calls(services, organization_id, call_query, page)
    activity_query = ActivityQuery(
        action=text(filters["action"]),
        entity_type=text(filters["entity_type"]),
        entity_id=text(filters["entity_id"]),
    )
    return await service.list_activity(services, organization_id, activity_query, page)


def _details(details: dict[str, Any]) -> str:
    return json.dumps(details, ensure_ascii=False, sort_keys=True) if details else ""
