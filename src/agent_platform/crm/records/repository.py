"""Every query on CRM tasks and calls.

Functions taking an `organization_id` serve the API and are scoped by it; those taking only a
record's id serve the jobs, which act on ids the platform itself deferred.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, case, delete, func, literal, literal_column, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.models import (
    CrmCall,
    CrmTask,
    SyncStatus,
    TaskSource,
    TaskStatus,
)
from agent_platform.kit.pagination import PageRequest, newest_first

# --- tasks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskQuery:
    """Which tasks a list shows; None means any."""

    lead_id: int | None = None
    status: TaskStatus | None = None
    responsible_user_id: int | None = None
    source: TaskSource | None = None
    due_before: datetime | None = None
    due_after: datetime | None = None


async def add_task(session: AsyncSession, task: CrmTask) -> CrmTask:
    session.add(task)
    await session.flush()
    await session.refresh(task)  # created_at and updated_at come from the database
    return task


async def task_of(
    session: AsyncSession,
    organization_id: uuid.UUID,
    task_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> CrmTask | None:
    statement = select(CrmTask).where(
        CrmTask.organization_id == organization_id, CrmTask.id == task_id
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def get_task(session: AsyncSession, task_id: uuid.UUID) -> CrmTask | None:
    return await session.get(CrmTask, task_id)


async def list_tasks(
    session: AsyncSession, organization_id: uuid.UUID, query: TaskQuery, page: PageRequest
) -> list[CrmTask]:
    statement = select(CrmTask).where(CrmTask.organization_id == organization_id)
    if query.lead_id is not None:
        statement = statement.where(
            CrmTask.entity_type == "leads", CrmTask.entity_id == query.lead_id
        )
    if query.status is not None:
        statement = statement.where(CrmTask.status == query.status.value)
    if query.responsible_user_id is not None:
        statement = statement.where(CrmTask.responsible_user_id == query.responsible_user_id)
    if query.source is not None:
        statement = statement.where(CrmTask.source == query.source.value)
    if query.due_before is not None:
        statement = statement.where(CrmTask.complete_till < query.due_before)
    if query.due_after is not None:
        statement = statement.where(CrmTask.complete_till > query.due_after)
    result = await session.scalars(newest_first(statement, CrmTask.created_at, CrmTask.id, page))
    return list(result)


async def complete_task(session: AsyncSession, task: CrmTask, result_text: str | None) -> None:
    """Mark the task completed here, its completion yet to reach Kommo."""
    task.status = TaskStatus.COMPLETED.value
    task.completed_at = func.now()
    task.result_text = result_text
    task.sync_status = SyncStatus.PENDING.value
    task.sync_error = None
    await session.flush()
    await session.refresh(task)  # completed_at and updated_at as the database set them


async def record_task_created(session: AsyncSession, task: CrmTask, kommo_id: int) -> None:
    """Kommo has the task, under `kommo_id`."""
    # Kommo's `task[add]` webhook may have come before this: its mirror row is this task.
    await session.execute(
        delete(CrmTask).where(
            CrmTask.connection_id == task.connection_id,
            CrmTask.external_id == kommo_id,
            CrmTask.source == TaskSource.KOMMO.value,
        )
    )
    await session.execute(
        update(CrmTask)
        .where(CrmTask.id == task.id)
        .values(
            external_id=kommo_id,
            # A completion asked for meanwhile waits for this id: it is not in Kommo yet.
            sync_status=case(
                (CrmTask.status == TaskStatus.COMPLETED.value, CrmTask.sync_status),
                else_=literal(SyncStatus.SYNCED.value),
            ),
            sync_error=None,
        )
    )


async def record_task_synced(session: AsyncSession, task_id: uuid.UUID) -> None:
    await session.execute(
        update(CrmTask)
        .where(CrmTask.id == task_id)
        .values(sync_status=SyncStatus.SYNCED.value, sync_error=None)
    )


@dataclass(frozen=True)
class KommoTaskState:
    """What a Kommo webhook said of a task; `fields` holds only the columns it carried."""

    organization_id: uuid.UUID
    connection_id: uuid.UUID
    kommo_id: int
    fields: dict[str, Any]
    changed_at: datetime | None


async def upsert_kommo_task(session: AsyncSession, state: KommoTaskState) -> CrmTask | None:
    """Insert the task as Kommo's, or update the row that mirrors it, unless what is stored
    is newer than this news. The row when it is new (a task made in Kommo), else None."""
    values = {
        "text": "",  # a row needs text; an update that carries none keeps the row's
        **state.fields,
        "organization_id": state.organization_id,
        "connection_id": state.connection_id,
        "external_id": state.kommo_id,
        "source": TaskSource.KOMMO.value,
        "sync_status": SyncStatus.SYNCED.value,
        "kommo_updated_at": state.changed_at,
    }
    statement = insert(CrmTask).values(**values)
    new = statement.excluded
    changes: dict[str, Any] = {name: new[name] for name in state.fields}
    if "status" in state.fields:
        # Completed when it first said so; reopened, not completed at all.
        changes["completed_at"] = case(
            (
                new.status == TaskStatus.COMPLETED.value,
                func.coalesce(CrmTask.completed_at, new.completed_at),
            ),
            else_=None,
        )
    changes["kommo_updated_at"] = func.coalesce(new.kommo_updated_at, CrmTask.kommo_updated_at)
    upsert = (
        statement.on_conflict_do_update(
            index_elements=[CrmTask.connection_id, CrmTask.external_id],
            index_where=CrmTask.external_id.is_not(None),
            set_=changes,
            where=(
                CrmTask.kommo_updated_at.is_(None)
                | new.kommo_updated_at.is_(None)
                | (new.kommo_updated_at >= CrmTask.kommo_updated_at)
            ),
        )
        # xmax is 0 on a row this statement inserted, not on one it updated.
        .returning(CrmTask.id, literal_column("xmax = 0", Boolean).label("inserted"))
    )
    row = (await session.execute(upsert)).one_or_none()
    if row is None or not row.inserted:
        return None
    return await session.get(CrmTask, row.id)


async def mark_kommo_task_deleted(
    session: AsyncSession, connection_id: uuid.UUID, kommo_id: int
) -> None:
    # A task we never mirrored leaves no trace: there is nothing to show of it.
    await session.execute(
        update(CrmTask)
        .where(CrmTask.connection_id == connection_id, CrmTask.external_id == kommo_id)
        .values(status=TaskStatus.DELETED.value)
    )


# --- calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallQuery:
    """Which calls a list shows; None means any. `since`/`until` bound when they were logged."""

    lead_id: int | None = None
    direction: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def add_call_if_new(session: AsyncSession, call: CrmCall) -> CrmCall | None:
    """The new call; None when the connection has a call with this `uniq` already."""
    # The attributes set on `call`, for an INSERT that can skip the conflict (a flush cannot).
    values = {
        column.key: getattr(call, column.key)
        for column in CrmCall.__table__.columns
        if getattr(call, column.key) is not None
    }
    inserted = await session.scalar(
        insert(CrmCall)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_crm_calls_connection_uniq")
        .returning(CrmCall.id)
    )
    return None if inserted is None else await session.get(CrmCall, inserted)


async def call_by_uniq(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID, uniq: str
) -> CrmCall | None:
    return await session.scalar(
        select(CrmCall).where(
            CrmCall.organization_id == organization_id,
            CrmCall.connection_id == connection_id,
            CrmCall.uniq == uniq,
        )
    )


async def call_of(
    session: AsyncSession, organization_id: uuid.UUID, call_id: uuid.UUID
) -> CrmCall | None:
    return await session.scalar(
        select(CrmCall).where(CrmCall.organization_id == organization_id, CrmCall.id == call_id)
    )


async def get_call(session: AsyncSession, call_id: uuid.UUID) -> CrmCall | None:
    return await session.get(CrmCall, call_id)


async def list_calls(
    session: AsyncSession, organization_id: uuid.UUID, query: CallQuery, page: PageRequest
) -> list[CrmCall]:
    statement = select(CrmCall).where(CrmCall.organization_id == organization_id)
    if query.lead_id is not None:
        statement = statement.where(CrmCall.lead_id == query.lead_id)
    if query.direction is not None:
        statement = statement.where(CrmCall.direction == query.direction)
    if query.since is not None:
        statement = statement.where(CrmCall.created_at >= query.since)
    if query.until is not None:
        statement = statement.where(CrmCall.created_at < query.until)
    result = await session.scalars(newest_first(statement, CrmCall.created_at, CrmCall.id, page))
    return list(result)


async def count_call_attempt(session: AsyncSession, call_id: uuid.UUID) -> None:
    await session.execute(
        update(CrmCall).where(CrmCall.id == call_id).values(push_attempts=CrmCall.push_attempts + 1)
    )


@dataclass(frozen=True)
class LoggedCall:
    """Where Kommo logged a call: its id, the card it filed it on, the phone it went by."""

    kommo_id: int
    entity_type: str
    entity_id: int
    phone: str | None


async def record_call_logged(session: AsyncSession, call_id: uuid.UUID, logged: LoggedCall) -> None:
    await session.execute(
        update(CrmCall)
        .where(CrmCall.id == call_id)
        .values(
            external_id=logged.kommo_id,
            entity_type=logged.entity_type,
            entity_id=logged.entity_id,
            phone=func.coalesce(CrmCall.phone, logged.phone),
            lead_id=func.coalesce(
                CrmCall.lead_id, logged.entity_id if logged.entity_type == "leads" else None
            ),
            sync_status=SyncStatus.SYNCED.value,
            sync_error=None,
        )
    )


# --- both ----------------------------------------------------------------------------------


async def record_sync_failed(
    session: AsyncSession,
    record: type[CrmTask] | type[CrmCall],
    record_id: uuid.UUID,
    reason: str,
) -> None:
    await session.execute(
        update(record)
        .where(record.id == record_id)
        .values(sync_status=SyncStatus.FAILED.value, sync_error=reason)
    )
