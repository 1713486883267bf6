"""Bringing tasks created or completed through our API to Kommo.

Creating goes through the task's delivery (crm_deliveries): its idempotency key and the exact
request are stored with the task, before anything is sent. Kommo keeps no key of ours on a
task, so an earlier attempt's task is recognised as notes are: the same text, deadline, type
and entity, created after the delivery was planned.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.delivery.notes import CLOCK_SKEW_SECONDS
from agent_platform.crm.kommo.errors import KommoError
from agent_platform.crm.kommo.models import TaskFilter, TaskInput, TaskUpdate
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.models import CrmDelivery, CrmTask, DeliveryStatus, SyncStatus, TaskStatus
from agent_platform.crm.records import repository
from agent_platform.crm.records.push import push_once
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("crm.records.tasks")


def task_delivery_key(task_id: uuid.UUID) -> str:
    return f"crm-task:{task_id}"


class TaskNotInKommoYetError(Exception):
    """A completion waits for the task's creation to reach Kommo: worth retrying shortly."""

    retryable = True


@dataclass(frozen=True)
class TaskCreation:
    """The push of one task's creation, as its delivery planned it."""

    delivery: CrmDelivery

    @property
    def may_have_been_sent(self) -> bool:
        return self.delivery.attempts > 0

    @property
    def planned(self) -> TaskInput:
        return TaskInput.model_validate(self.delivery.payload)

    async def find_sent(self, kommo: KommoClient) -> int | None:
        planned = self.planned
        planned_at = int(self.delivery.created_at.timestamp()) - CLOCK_SKEW_SECONDS
        same_place = TaskFilter(
            entity_type=planned.entity_type,
            entity_ids=[planned.entity_id] if planned.entity_id is not None else [],
            task_type_ids=[planned.task_type_id],
        )
        async for task in kommo.tasks.iterate(filter=same_place, order=("created_at", "desc")):
            if task.created_at < planned_at:
                return None  # newest first: the rest is older still
            if (
                task.text == planned.text
                and task.complete_till == planned.complete_till
                and planned.responsible_user_id in (None, task.responsible_user_id)
            ):
                return task.id
        return None

    async def count_attempt(self, session: AsyncSession) -> None:
        await crm.count_delivery_attempt(session, self.delivery.id)

    async def send(self, kommo: KommoClient) -> int:
        added = await kommo.tasks.add([self.planned])
        if len(added) != 1:
            raise KommoError(None, f"Kommo answered {len(added)} rows for one task")
        return added[0].id


async def push_task_creation(services: Services, task_id: uuid.UUID) -> None:
    async with transaction(services.sessions) as session:
        task = await repository.get_task(session, task_id)
        delivery = await crm.delivery_by_key(session, task_delivery_key(task_id))
    if task is None or delivery is None or delivery.status == DeliveryStatus.SENT.value:
        log.info("task_push_skipped", reason="gone or already in Kommo")
        return
    _bind_to_logs(task)
    kommo_id = await push_once(services, task.connection_id, TaskCreation(delivery))
    # One transaction: a crash before it commits leaves the delivery pending, and the retry
    # finds the task in Kommo instead of creating it again.
    async with transaction(services.sessions) as session:
        await crm.mark_delivery_sent(session, delivery.id, kommo_id)
        await repository.record_task_created(session, task, kommo_id)
    log.info("task_created_in_kommo", kommo_id=kommo_id)


async def push_task_completion(services: Services, task_id: uuid.UUID) -> None:
    async with transaction(services.sessions) as session:
        task = await repository.get_task(session, task_id)
    if (
        task is None
        or task.status != TaskStatus.COMPLETED.value
        or task.sync_status != SyncStatus.PENDING.value
    ):
        log.info("task_completion_skipped", reason="gone, reopened or already in Kommo")
        return
    _bind_to_logs(task)
    kommo_id = task.external_id
    if kommo_id is None:
        raise TaskNotInKommoYetError(f"task {task_id} is not in Kommo yet")
    await call_kommo(
        services, task.connection_id, lambda kommo: _complete(kommo, kommo_id, task.result_text)
    )
    async with transaction(services.sessions) as session:
        await repository.record_task_synced(session, task_id)
    log.info("task_completed_in_kommo", kommo_id=kommo_id)


def _bind_to_logs(task: CrmTask) -> None:
    structlog.contextvars.bind_contextvars(
        organization_id=str(task.organization_id), crm_task_id=str(task.id)
    )
    if task.entity_type == "leads":
        structlog.contextvars.bind_contextvars(lead_id=task.entity_id)


async def _complete(kommo: KommoClient, kommo_id: int, result_text: str | None) -> None:
    # Completing twice would write the result twice in the task's feed: a retry after a
    # completion that reached Kommo finds the task completed and stops there.
    if (await kommo.tasks.get(kommo_id)).is_completed:
        return
    if result_text:
        await kommo.tasks.complete(kommo_id, result_text)
    else:
        await kommo.tasks.update([TaskUpdate(id=kommo_id, is_completed=True)])
