"""The jobs that bring CRM tasks and calls to Kommo, and Kommo's tasks to us."""

from __future__ import annotations

import uuid

from agent_platform.crm.inbox_failures import event_failure_recorded
from agent_platform.crm.models import CrmCall, CrmTask
from agent_platform.crm.records.call_sync import push_call
from agent_platform.crm.records.mirror import mirror_task_event
from agent_platform.crm.records.push import failure_recorded
from agent_platform.crm.records.task_sync import push_task_completion, push_task_creation
from agent_platform.queue.registry import platform_job
from agent_platform.services import Services


@platform_job("push_crm_task")
async def push_crm_task(services: Services, *, task_id: str) -> None:
    record_id = uuid.UUID(task_id)
    async with failure_recorded(services, CrmTask, record_id):
        await push_task_creation(services, record_id)


@platform_job("complete_crm_task")
async def complete_crm_task(services: Services, *, task_id: str) -> None:
    record_id = uuid.UUID(task_id)
    async with failure_recorded(services, CrmTask, record_id):
        await push_task_completion(services, record_id)


@platform_job("log_crm_call")
async def log_crm_call(services: Services, *, call_id: str) -> None:
    record_id = uuid.UUID(call_id)
    async with failure_recorded(services, CrmCall, record_id):
        await push_call(services, record_id)


@platform_job("mirror_kommo_task")
async def mirror_kommo_task(services: Services, *, inbox_event_id: str) -> None:
    event_id = uuid.UUID(inbox_event_id)
    async with event_failure_recorded(services, event_id):
        await mirror_task_event(services, event_id)
