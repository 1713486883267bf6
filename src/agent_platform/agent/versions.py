"""Saving and publishing an agent's settings: every save a numbered version, one published.

Publishing copies the version's snapshot onto the agent's row, which is what the reply flow
reads. These run inside the caller's transaction, on an agent it has locked
(repository.agent_to_change) or just created: version numbers are given one at a time.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent import repository
from agent_platform.agent.models import Agent, AgentStatus, AgentVersion
from agent_platform.agent.schemas import AgentSettings


def settings_of(agent: Agent) -> AgentSettings:
    return AgentSettings.model_validate(agent, from_attributes=True)


def _apply(agent: Agent, settings: AgentSettings) -> None:
    # The row's columns carry the schema's names (see models.Agent).
    for name, value in settings.model_dump(mode="json").items():
        setattr(agent, name, value)


async def new_agent(
    session: AsyncSession,
    organization_id: uuid.UUID,
    settings: AgentSettings,
    *,
    created_by: str | None,
    note: str | None,
) -> tuple[Agent, AgentVersion]:
    """A draft agent, and its version 1: `settings`."""
    agent = Agent(organization_id=organization_id, status=AgentStatus.DRAFT.value)
    _apply(agent, settings)
    await repository.add_agent(session, agent)
    return agent, await _keep(session, agent, settings, created_by=created_by, note=note)


async def save_version(
    session: AsyncSession,
    agent: Agent,
    settings: AgentSettings,
    *,
    created_by: str | None,
    note: str | None,
) -> AgentVersion:
    """Keep `settings` as the agent's next version; the published one stays as it is."""
    version = await _keep(session, agent, settings, created_by=created_by, note=note)
    if agent.published_version_id is None:
        # Nothing answers yet: the row shows the draft being worked on.
        _apply(agent, settings)
    return version


async def _keep(
    session: AsyncSession,
    agent: Agent,
    settings: AgentSettings,
    *,
    created_by: str | None,
    note: str | None,
) -> AgentVersion:
    version = AgentVersion(
        organization_id=agent.organization_id,
        agent_id=agent.id,
        number=await repository.next_version_number(session, agent),
        settings=settings.model_dump(mode="json"),
        created_by=created_by,
        note=note,
    )
    await repository.add_version(session, version)
    return version


def publish_version(agent: Agent, version: AgentVersion, *, published_by: str | None) -> None:
    """From now on `version` answers customers; a draft agent becomes active (a paused one
    stays paused: publishing is not resuming)."""
    _apply(agent, AgentSettings.model_validate(version.settings))
    agent.published_version_id = version.id
    agent.published_at = datetime.now(UTC)
    agent.published_by = published_by
    if agent.status == AgentStatus.DRAFT.value:
        agent.status = AgentStatus.ACTIVE.value
