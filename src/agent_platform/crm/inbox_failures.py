"""The inbox's record of a job that gave up on an event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent_platform.crm import repository
from agent_platform.crm.models import InboxStatus
from agent_platform.db.session import transaction
from agent_platform.kit.transient import is_transient
from agent_platform.services import Services


@asynccontextmanager
async def event_failure_recorded(services: Services, event_id: uuid.UUID) -> AsyncIterator[None]:
    """When the work inside fails for good, the event is marked failed with the error: no retry
    will follow, and the inbox shows why the event was not acted on. The error still
    propagates (the job fails, or is retried when the failure is transient)."""
    try:
        yield
    except Exception as exc:
        if not is_transient(exc):
            async with transaction(services.sessions) as session:
                await repository.finish_inbox_event(
                    session, event_id, InboxStatus.FAILED, repr(exc)[:2000]
                )
        raise
