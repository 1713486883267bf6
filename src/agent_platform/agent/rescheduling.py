"""Deciding a reply again later: the reply job deferred to a set time, in the open transaction."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.queue.registry import JOBS, defer_in_transaction
from agent_platform.services import Services

ANSWER_JOB = "answer_incoming_message"
"""The reply job's name (agent.tasks), named here so the service can defer it again without
importing the module that imports the service."""


async def answer_again_at(
    session: AsyncSession, services: Services, inbox_event_id: uuid.UUID, at: datetime
) -> None:
    """The event's reply job, due at `at`; it exists only if `session`'s transaction commits."""
    await defer_in_transaction(
        session,
        services.queue,
        JOBS[ANSWER_JOB],
        services.settings.job_queue_name,
        schedule_at=at,
        inbox_event_id=str(inbox_event_id),
    )
