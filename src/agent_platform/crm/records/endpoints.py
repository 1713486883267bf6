"""`/api/v1/crm/tasks` and `/api/v1/crm/calls`: list, filter, read and create (creating pushes
to Kommo through a job; the answer says `sync_status: pending` until Kommo has it)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import AwareDatetime

from agent_platform.crm.models import TaskSource, TaskStatus
from agent_platform.crm.records import service
from agent_platform.crm.records.repository import CallQuery, TaskQuery
from agent_platform.crm.records.schemas import (
    MAX_BIGINT,
    CallIn,
    CallOut,
    TaskCompletionIn,
    TaskIn,
    TaskOut,
)
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/crm", tags=["crm tasks and calls"])

KommoIdQuery = Annotated[int | None, Query(ge=1, le=MAX_BIGINT)]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post(
    "/tasks",
    status_code=status.HTTP_201_CREATED,
    summary="Create a task in Kommo (pushed by a job; sync_status tells when it is there)",
)
async def create_task(request: Request, principal: CurrentPrincipal, body: TaskIn) -> TaskOut:
    task = await service.create_task(_services(request), principal.organization_id, body)
    return TaskOut.of(task)


@router.get("/tasks", summary="Tasks created here or mirrored from Kommo, newest first")
async def list_tasks(
    request: Request,
    principal: CurrentPrincipal,
    lead_id: KommoIdQuery = None,
    task_status: Annotated[TaskStatus | None, Query(alias="status")] = None,
    responsible_user_id: KommoIdQuery = None,
    source: TaskSource | None = None,
    due_before: Annotated[AwareDatetime | None, Query(description="complete_till before")] = None,
    due_after: Annotated[AwareDatetime | None, Query(description="complete_till after")] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[TaskOut]:
    query = TaskQuery(
        lead_id=lead_id,
        status=task_status,
        responsible_user_id=responsible_user_id,
        source=source,
        due_before=due_before,
        due_after=due_after,
    )
    found = await service.list_tasks(
        _services(request), principal.organization_id, query, PageRequest.parse(limit, cursor)
    )
    return Page[TaskOut](
        items=[TaskOut.of(task) for task in found.items], next_cursor=found.next_cursor
    )


@router.get("/tasks/{task_id}", summary="One task")
async def get_task(request: Request, principal: CurrentPrincipal, task_id: uuid.UUID) -> TaskOut:
    task = await service.get_task(_services(request), principal.organization_id, task_id)
    return TaskOut.of(task)


@router.post("/tasks/{task_id}/complete", summary="Complete a task (pushed to Kommo by a job)")
async def complete_task(
    request: Request,
    principal: CurrentPrincipal,
    task_id: uuid.UUID,
    body: TaskCompletionIn | None = None,
) -> TaskOut:
    task = await service.complete_task(
        _services(request),
        principal.organization_id,
        task_id,
        body.result_text if body is not None else None,
    )
    return TaskOut.of(task)


@router.post(
    "/calls",
    status_code=status.HTTP_201_CREATED,
    summary="Log a call in Kommo (pushed by a job); a `uniq` logged before answers 200",
)
async def log_call(
    request: Request, response: Response, principal: CurrentPrincipal, body: CallIn
) -> CallOut:
    call, is_new = await service.log_call(_services(request), principal.organization_id, body)
    if not is_new:
        response.status_code = status.HTTP_200_OK
    return CallOut.of(call)


@router.get("/calls", summary="Calls logged through the platform, newest first")
async def list_calls(
    request: Request,
    principal: CurrentPrincipal,
    lead_id: KommoIdQuery = None,
    direction: Literal["inbound", "outbound"] | None = None,
    since: Annotated[AwareDatetime | None, Query(description="logged at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="logged before")] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[CallOut]:
    query = CallQuery(lead_id=lead_id, direction=direction, since=since, until=until)
    found = await service.list_calls(
        _services(request), principal.organization_id, query, PageRequest.parse(limit, cursor)
    )
    return Page[CallOut](
        items=[CallOut.of(call) for call in found.items], next_cursor=found.next_cursor
    )


@router.get("/calls/{call_id}", summary="One call")
async def get_call(request: Request, principal: CurrentPrincipal, call_id: uuid.UUID) -> CallOut:
    call = await service.get_call(_services(request), principal.organization_id, call_id)
    return CallOut.of(call)
