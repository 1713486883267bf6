"""Tasks and calls on a lead are automation events: task_created (made through the API, by an
agent or an automation, or in Kommo and mirrored here) and call_added."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.models import CrmCall, CrmTask
from agent_platform.services import Services


async def tell_automation(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    *,
    task: CrmTask | None = None,
    call: CrmCall | None = None,
) -> None:
    """Defer the task's or call's event in the session's transaction, when a trigger waits."""
    # Imported here: automation's executor imports the agent, whose handover imports the
    # records service, which imports this module.
    from agent_platform.automation import dispatch

    event = dispatch.task_created_event(task) if task else None
    if call is not None:
        event = dispatch.call_added_event(call)
    await dispatch.defer_if_awaited(session, services, organization_id, event)
