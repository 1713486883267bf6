"""The agent's jobs."""

from __future__ import annotations

import uuid

from agent_platform.agent.manager_messages import record_manager_message
from agent_platform.agent.rescheduling import ANSWER_JOB
from agent_platform.agent.service import answer_inbox_event
from agent_platform.crm.inbox_failures import event_failure_recorded
from agent_platform.queue.registry import platform_job
from agent_platform.services import Services


@platform_job(ANSWER_JOB)
async def answer_incoming_message(services: Services, *, inbox_event_id: str) -> None:
    event_id = uuid.UUID(inbox_event_id)
    async with event_failure_recorded(services, event_id):
        await answer_inbox_event(services, event_id)


@platform_job("record_manager_message")
async def record_manager_message_job(services: Services, *, inbox_event_id: str) -> None:
    await record_manager_message(services, uuid.UUID(inbox_event_id))
