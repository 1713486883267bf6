"""The agent's jobs."""

from __future__ import annotations

import uuid

from agent_platform.agent.manager_messages import record_manager_message
from agent_platform.agent.rescheduling import ANSWER_JOB
from agent_platform.agent.service import answer_inbox_event
from agent_platform.crm import repository as crm
from agent_platform.crm.models import InboxStatus
from agent_platform.db.session import transaction
from agent_platform.kit.transient import is_transient
from agent_platform.queue.registry import platform_job
from agent_platform.services import Services


@platform_job(ANSWER_JOB)
async def answer_incoming_message(services: Services, *, inbox_event_id: str) -> None:
    event_id = uuid.UUID(inbox_event_id)
    try:
        await answer_inbox_event(services, event_id)
    except Exception as exc:
        if not is_transient(exc):
            # No retry will follow: the inbox shows why this message got no answer.
            async with transaction(services.sessions) as session:
                await crm.finish_inbox_event(
                    session, event_id, InboxStatus.FAILED, repr(exc)[:2000]
                )
        raise


@platform_job("record_manager_message")
async def record_manager_message_job(services: Services, *, inbox_event_id: str) -> None:
    await record_manager_message(services, uuid.UUID(inbox_event_id))
