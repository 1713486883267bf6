"""Every query on triggers, scoped by the organization."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.models import Agent
from agent_platform.automation.models import Trigger
from agent_platform.kit.pagination import PageRequest, newest_first


@dataclass(frozen=True)
class TriggerQuery:
    """Which triggers a list shows; None means any."""

    agent_id: uuid.UUID | None = None
    event_type: str | None = None
    enabled: bool | None = None


async def add_trigger(session: AsyncSession, trigger: Trigger) -> Trigger:
    session.add(trigger)
    await session.flush()
    await session.refresh(trigger)  # created_at and updated_at come from the database
    return trigger


async def trigger_of(
    session: AsyncSession,
    organization_id: uuid.UUID,
    trigger_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Trigger | None:
    statement = select(Trigger).where(
        Trigger.organization_id == organization_id, Trigger.id == trigger_id
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def list_triggers(
    session: AsyncSession, organization_id: uuid.UUID, query: TriggerQuery, page: PageRequest
) -> list[Trigger]:
    statement = select(Trigger).where(Trigger.organization_id == organization_id)
    if query.agent_id is not None:
        statement = statement.where(Trigger.agent_id == query.agent_id)
    if query.event_type is not None:
        statement = statement.where(Trigger.event_type == query.event_type)
    if query.enabled is not None:
        statement = statement.where(Trigger.enabled == query.enabled)
    result = await session.scalars(newest_first(statement, Trigger.created_at, Trigger.id, page))
    return list(result)


async def delete_trigger(session: AsyncSession, trigger: Trigger) -> None:
    await session.delete(trigger)
    await session.flush()


async def agent_exists(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Agent.id).where(Agent.organization_id == organization_id, Agent.id == agent_id)
    )
    return found is not None
