"""Deciding a reply again later: the reply job deferred to a set time, in the open transaction.

`queue.registry.defer_in_transaction` defers for now only; a debounce or the next opening
needs Procrastinate's `schedule_at`, with the same transaction and request id.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.db.session import raw_psycopg_connection
from agent_platform.services import Services

ANSWER_JOB = "answer_incoming_message"
"""The reply job's name (agent.tasks), named here so the service can defer it again without
importing the module that imports the service."""


async def answer_again_at(
    session: AsyncSession, services: Services, inbox_event_id: uuid.UUID, at: datetime
) -> None:
    """The event's reply job, due at `at`; it exists only if `session`'s transaction commits."""
    arguments = {"inbox_event_id": str(inbox_event_id)}
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id:
        arguments["request_id"] = request_id
    deferrer = services.queue.configure_task(
        name=ANSWER_JOB,
        queue=services.settings.job_queue_name,
        connection=await raw_psycopg_connection(session),
        schedule_at=at,
    )
    await deferrer.defer_async(**arguments)
