"""CRM tasks and calls through the API: create, complete, list, read.

Creating stores the record and defers the job that pushes it to Kommo in one transaction
(house rule 2), so the answer comes at once with `sync_status: pending`, and no job exists
for a record that was not stored. Nothing here calls Kommo: the jobs do (tasks.py).

Writes check the organization in every query; reads also run under row-level security. The
write transactions cannot take the tenant role: deferring a job writes the queue's tables,
which are not the organization's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.models import TaskInput
from agent_platform.crm.models import (
    ConnectionStatus,
    CrmCall,
    CrmConnection,
    CrmDelivery,
    CrmTask,
    DeliveryStatus,
    SyncStatus,
    TaskSource,
    TaskStatus,
)
from agent_platform.crm.records import repository
from agent_platform.crm.records.automation_events import tell_automation
from agent_platform.crm.records.repository import CallQuery, TaskQuery
from agent_platform.crm.records.schemas import CallIn, TaskIn
from agent_platform.crm.records.task_sync import task_delivery_key
from agent_platform.crm.records.tasks import complete_crm_task, log_crm_call, push_crm_task
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import AppError, ConflictError, NotFoundError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.queue.registry import JobDefinition, defer_in_transaction
from agent_platform.services import Services


class InvalidConnectionError(AppError):
    status_code = 422
    code = "invalid_connection"


class TaskNotCompletableError(ConflictError):
    code = "task_not_completable"


# --- tasks ---------------------------------------------------------------------------------


async def create_task(services: Services, organization_id: uuid.UUID, task_in: TaskIn) -> CrmTask:
    entity_type, entity_id = task_in.entity
    async with transaction(services.sessions) as session:
        connection = await _connection_for(session, organization_id, task_in.connection_id)
        return await store_task(
            session,
            services,
            PlannedTask(
                organization_id=organization_id,
                connection_id=connection.id,
                entity_type=entity_type,
                entity_id=entity_id,
                text=task_in.text,
                complete_till=task_in.complete_till,
                task_type_id=task_in.task_type_id,
                responsible_user_id=task_in.responsible_user_id,
            ),
        )


@dataclass(frozen=True)
class PlannedTask:
    organization_id: uuid.UUID
    connection_id: uuid.UUID
    entity_type: str
    entity_id: int
    text: str
    complete_till: datetime
    task_type_id: int | None = None
    responsible_user_id: int | None = None


async def store_task(session: AsyncSession, services: Services, plan: PlannedTask) -> CrmTask:
    """The task, its delivery (the exact Kommo request) and the job that pushes it, in the
    caller's open transaction: they exist together, or not at all."""
    # What is not chosen is left out, not sent as null: Kommo then picks its default type
    # (a follow-up) and makes the connection's user responsible.
    chosen = {
        name: value
        for name, value in (
            ("task_type_id", plan.task_type_id),
            ("responsible_user_id", plan.responsible_user_id),
        )
        if value is not None
    }
    planned = TaskInput(
        text=plan.text,
        complete_till=int(plan.complete_till.timestamp()),
        entity_type=plan.entity_type,
        entity_id=plan.entity_id,
        **chosen,
    )
    task = await repository.add_task(
        session,
        CrmTask(
            organization_id=plan.organization_id,
            connection_id=plan.connection_id,
            source=TaskSource.PLATFORM.value,
            entity_type=plan.entity_type,
            entity_id=plan.entity_id,
            text=plan.text,
            task_type_id=planned.task_type_id,
            responsible_user_id=plan.responsible_user_id,
            complete_till=plan.complete_till,
        ),
    )
    await crm.add_delivery(
        session,
        CrmDelivery(
            organization_id=plan.organization_id,
            connection_id=plan.connection_id,
            idempotency_key=task_delivery_key(task.id),
            kind="task",
            entity_type=plan.entity_type,
            entity_id=plan.entity_id,
            payload=planned.to_kommo(),
            status=DeliveryStatus.PENDING.value,
        ),
    )
    await _defer(session, services, push_crm_task, task_id=str(task.id))
    await tell_automation(session, services, plan.organization_id, task=task)
    return task


async def complete_task(
    services: Services, organization_id: uuid.UUID, task_id: uuid.UUID, result_text: str | None
) -> CrmTask:
    async with transaction(services.sessions) as session:
        # Locked: of two completions at once, the second sees the first's.
        task = await repository.task_of(session, organization_id, task_id, for_update=True)
        if task is None:
            raise NotFoundError("No task with this id.")
        _check_completable(task)
        await repository.complete_task(session, task, result_text)
        await _defer(session, services, complete_crm_task, task_id=str(task.id))
    return task


def _check_completable(task: CrmTask) -> None:
    if task.status == TaskStatus.COMPLETED.value:
        raise TaskNotCompletableError("The task is completed already.")
    if task.status == TaskStatus.DELETED.value:
        raise TaskNotCompletableError("The task was deleted in Kommo.")
    if task.external_id is None and task.sync_status == SyncStatus.FAILED.value:
        raise TaskNotCompletableError(
            "The task never reached Kommo; create it again.",
            details={"sync_error": task.sync_error},
        )


async def get_task(services: Services, organization_id: uuid.UUID, task_id: uuid.UUID) -> CrmTask:
    async with tenant_transaction(services.sessions, organization_id) as session:
        task = await repository.task_of(session, organization_id, task_id)
    if task is None:
        raise NotFoundError("No task with this id.")
    return task


async def list_tasks(
    services: Services, organization_id: uuid.UUID, query: TaskQuery, page: PageRequest
) -> RowsPage[CrmTask]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return page.cut(await repository.list_tasks(session, organization_id, query, page))


# --- calls ---------------------------------------------------------------------------------


async def log_call(
    services: Services, organization_id: uuid.UUID, call_in: CallIn
) -> tuple[CrmCall, bool]:
    """The call, and whether it is new: a call whose `uniq` the connection has logged already
    is not logged again (a client's retry gets the first one back)."""
    async with transaction(services.sessions) as session:
        connection = await _connection_for(session, organization_id, call_in.connection_id)
        uniq = call_in.uniq or uuid.uuid4().hex
        call = await repository.add_call_if_new(
            session,
            CrmCall(
                organization_id=organization_id,
                connection_id=connection.id,
                lead_id=call_in.lead_id,
                uniq=uniq,
                direction=call_in.direction,
                duration_seconds=call_in.duration,
                source=call_in.source,
                phone=call_in.phone,
                link=call_in.link,
                call_status=call_in.call_status,
                call_result=call_in.call_result,
                responsible_user_id=call_in.responsible_user_id,
            ),
        )
        if call is None:
            logged_before = await repository.call_by_uniq(
                session, organization_id, connection.id, uniq
            )
            assert logged_before is not None, "the insert met this very call"
            return logged_before, False
        await _defer(session, services, log_crm_call, call_id=str(call.id))
        await tell_automation(session, services, organization_id, call=call)
    return call, True


async def get_call(services: Services, organization_id: uuid.UUID, call_id: uuid.UUID) -> CrmCall:
    async with tenant_transaction(services.sessions, organization_id) as session:
        call = await repository.call_of(session, organization_id, call_id)
    if call is None:
        raise NotFoundError("No call with this id.")
    return call


async def list_calls(
    services: Services, organization_id: uuid.UUID, query: CallQuery, page: PageRequest
) -> RowsPage[CrmCall]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return page.cut(await repository.list_calls(session, organization_id, query, page))


# --- shared --------------------------------------------------------------------------------


async def _connection_for(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID | None
) -> CrmConnection:
    """The organization's connection to push to: the one named, else its only active one."""
    connections = await crm.connections_of(session, organization_id)
    if connection_id is not None:
        connection = next((c for c in connections if c.id == connection_id), None)
        if connection is None:
            raise InvalidConnectionError(
                "Your organization has no Kommo connection with this id.",
                details=[{"path": "connection_id", "message": "unknown connection"}],
            )
    else:
        active = [c for c in connections if c.status == ConnectionStatus.ACTIVE.value]
        if len(active) != 1:
            raise InvalidConnectionError(
                "Connect a Kommo account first."
                if not active
                else "Your organization has several Kommo connections: name one with "
                "connection_id.",
                details=[{"path": "connection_id", "message": f"{len(active)} active"}],
            )
        connection = active[0]
    if connection.status != ConnectionStatus.ACTIVE.value:
        raise InvalidConnectionError(
            f"The Kommo connection is {connection.status}: nothing can be sent through it.",
            details=[{"path": "connection_id", "message": connection.status_reason}],
        )
    return connection


async def _defer(
    session: AsyncSession, services: Services, job: JobDefinition, **arguments: Any
) -> None:
    await defer_in_transaction(
        session, services.queue, job, services.settings.job_queue_name, **arguments
    )
