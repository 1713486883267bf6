"""Every query on agents and their versions."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.models import Agent, AgentVersion
from agent_platform.kit.pagination import PageRequest, newest_first


@dataclass(frozen=True)
class AgentRecord:
    """An agent with the numbers of its published and its newest version (none for an agent
    written by other means than the API, which saves a version with every agent)."""

    agent: Agent
    published_version: int | None
    latest_version: int | None

    # Where a page of agents ends (kit.pagination).
    @property
    def created_at(self) -> datetime:
        return self.agent.created_at

    @property
    def id(self) -> uuid.UUID:
        return self.agent.id


async def get_agent(session: AsyncSession, agent_id: uuid.UUID) -> Agent | None:
    """Unscoped: for the reply flow, which knows the agent from its connection."""
    return await session.get(Agent, agent_id)


def _with_version_numbers(statement: Select[Agent]) -> Select[Agent, int | None, int | None]:
    published = (
        select(AgentVersion.number)
        .where(AgentVersion.id == Agent.published_version_id)
        .scalar_subquery()
    )
    latest = (
        select(func.max(AgentVersion.number))
        .where(AgentVersion.agent_id == Agent.id)
        .scalar_subquery()
    )
    # Read after this transaction's own writes: the rows, not the session's copies.
    return statement.add_columns(published, latest).execution_options(populate_existing=True)


async def agent_record(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> AgentRecord | None:
    statement = select(Agent).where(Agent.id == agent_id, Agent.organization_id == organization_id)
    row = (await session.execute(_with_version_numbers(statement))).first()
    return AgentRecord(*row) if row else None


async def agent_records(
    session: AsyncSession, organization_id: uuid.UUID, statuses: Collection[str], page: PageRequest
) -> list[AgentRecord]:
    statement = select(Agent).where(
        Agent.organization_id == organization_id, Agent.status.in_(statuses)
    )
    rows = await session.execute(
        _with_version_numbers(newest_first(statement, Agent.created_at, Agent.id, page))
    )
    return [AgentRecord(*row) for row in rows]


async def agent_to_change(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> Agent | None:
    """The agent, locked until the transaction ends: its changes (and version numbers) are
    made one after another."""
    return await session.scalar(
        select(Agent)
        .where(Agent.id == agent_id, Agent.organization_id == organization_id)
        .with_for_update()
    )


async def add_agent(session: AsyncSession, agent: Agent) -> None:
    session.add(agent)
    await session.flush()


async def next_version_number(session: AsyncSession, agent: Agent) -> int:
    latest = await session.scalar(
        select(func.max(AgentVersion.number)).where(
            AgentVersion.agent_id == agent.id,
            AgentVersion.organization_id == agent.organization_id,
        )
    )
    return (latest or 0) + 1


async def add_version(session: AsyncSession, version: AgentVersion) -> None:
    session.add(version)
    await session.flush()


async def version_by_number(
    session: AsyncSession, agent: Agent, number: int
) -> AgentVersion | None:
    return await session.scalar(
        select(AgentVersion).where(
            AgentVersion.agent_id == agent.id,
            AgentVersion.organization_id == agent.organization_id,
            AgentVersion.number == number,
        )
    )


async def latest_version(session: AsyncSession, agent: Agent) -> AgentVersion | None:
    return await session.scalar(
        select(AgentVersion)
        .where(
            AgentVersion.agent_id == agent.id,
            AgentVersion.organization_id == agent.organization_id,
        )
        .order_by(AgentVersion.number.desc())
        .limit(1)
    )


async def versions_of(session: AsyncSession, agent: Agent, page: PageRequest) -> list[AgentVersion]:
    statement = select(AgentVersion).where(
        AgentVersion.agent_id == agent.id,
        AgentVersion.organization_id == agent.organization_id,
    )
    return list(
        await session.scalars(
            newest_first(statement, AgentVersion.created_at, AgentVersion.id, page)
        )
    )
