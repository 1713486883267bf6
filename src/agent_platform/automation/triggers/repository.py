"""Every query on triggers, scoped by the organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.models import Agent
from agent_platform.automation.models import Trigger
from agent_platform.automation.resources import newest_rows
from agent_platform.kit.pagination import PageRequest


@dataclass(frozen=True)
class TriggerQuery:
    """Which triggers a list shows; None means any."""

    agent_id: uuid.UUID | None = None
    event_type: str | None = None
    enabled: bool | None = None


async def list_triggers(
    session: AsyncSession, organization_id: uuid.UUID, query: TriggerQuery, page: PageRequest
) -> list[Trigger]:
    equal_to = {
        Trigger.agent_id: query.agent_id,
        Trigger.event_type: query.event_type,
        Trigger.enabled: query.enabled,
    }
    return await newest_rows(session, Trigger, organization_id, page, equal_to)


async def agent_exists(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Agent.id).where(Agent.organization_id == organization_id, Agent.id == agent_id)
    )
    return found is not None
