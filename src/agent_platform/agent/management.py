"""What the agents API does: create, read, change, archive, publish and roll back agents.

Each call is one transaction scoped to the caller's organization; an agent of another
organization is not found. Once it commits, the agent's cache entry is forgotten
(agent.published), so the next reply reads the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.repository import record_activity
from agent_platform.agent import repository
from agent_platform.agent.models import Agent, AgentStatus, AgentVersion
from agent_platform.agent.published import forget_agent
from agent_platform.agent.repository import AgentRecord
from agent_platform.agent.schemas import AgentCreate, AgentPatch, AgentSettings
from agent_platform.agent.versions import new_agent, publish_version, save_version, settings_of
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import ConflictError, NotFoundError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.organization.auth import Principal
from agent_platform.services import Services

log = structlog.get_logger("agent.management")

# An archived agent is deleted for the API's listing, though it and its versions are kept.
LISTED_STATUSES = frozenset(status.value for status in AgentStatus) - {AgentStatus.ARCHIVED}


class AgentNotFoundError(NotFoundError):
    code = "agent_not_found"

    def __init__(self, agent_id: uuid.UUID) -> None:
        super().__init__(f"No agent {agent_id} in this organization.")


class VersionNotFoundError(NotFoundError):
    code = "version_not_found"


class AgentArchivedError(ConflictError):
    code = "agent_archived"


class NotPublishedError(ConflictError):
    code = "agent_not_published"


class NotAnOlderVersionError(ConflictError):
    code = "not_an_older_version"


@dataclass(frozen=True)
class AnsweringVersion:
    settings: AgentSettings
    version_id: uuid.UUID
    number: int


async def answering_version(
    session: AsyncSession, record: AgentRecord, number: int | None
) -> AnsweringVersion:
    """The version to answer with: the numbered one (a draft tried before it is published),
    else the published one."""
    agent = record.agent
    if number is not None:
        version = await repository.version_by_number(session, agent, number)
        if version is None:
            raise VersionNotFoundError(f"Agent {agent.id} has no version {number}.")
        return AnsweringVersion(AgentSettings.model_validate(version.settings), version.id, number)
    if agent.published_version_id is None or record.published_version is None:
        raise NotPublishedError(
            "The agent has no published version: publish one, or name a version to try it."
        )
    return AnsweringVersion(
        settings_of(agent), agent.published_version_id, record.published_version
    )


def _actor(principal: Principal) -> str:
    return f"{principal.actor_type}:{principal.actor_id}"


async def create_agent(services: Services, principal: Principal, body: AgentCreate) -> AgentRecord:
    """A draft with version 1: it answers nobody until a version is published."""
    settings = AgentSettings.model_validate(body.model_dump(exclude={"note"}))
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        agent, _ = await new_agent(
            session,
            principal.organization_id,
            settings,
            created_by=_actor(principal),
            note=body.note,
        )
        record = await _record(session, principal, agent.id)
    log.info("agent_created", agent_id=str(agent.id))
    return record


async def get_agent(services: Services, principal: Principal, agent_id: uuid.UUID) -> AgentRecord:
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        return await _record(session, principal, agent_id)


async def list_agents(
    services: Services, principal: Principal, status: str | None, page: PageRequest
) -> RowsPage[AgentRecord]:
    """Newest first; archived agents only when asked for by status."""
    statuses = {status} if status else LISTED_STATUSES
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        return page.cut(
            await repository.agent_records(session, principal.organization_id, statuses, page)
        )


async def update_agent(
    services: Services, principal: Principal, agent_id: uuid.UUID, patch: AgentPatch
) -> AgentRecord:
    """Settings sent are saved as a new version (published separately); a status applies now."""
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        agent = await _agent_to_change(session, principal, agent_id)
        changes = patch.settings_changes()
        if changes:
            latest = await _latest_settings(session, agent)
            # A valid patch over valid settings is valid: nested objects are replaced whole.
            settings = AgentSettings.model_validate(latest.model_dump(mode="json") | changes)
            await save_version(
                session, agent, settings, created_by=_actor(principal), note=patch.note
            )
        if patch.status is not None and patch.status != agent.status:
            await _change_status(session, principal, agent, patch.status)
        record = await _record(session, principal, agent_id)
    await forget_agent(services, agent_id)
    return record


async def archive_agent(services: Services, principal: Principal, agent_id: uuid.UUID) -> None:
    """Stops it answering for good; it stays readable, with its versions. Archiving twice is
    the same as once."""
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        agent = await repository.agent_to_change(session, principal.organization_id, agent_id)
        if agent is None:
            raise AgentNotFoundError(agent_id)
        if agent.status != AgentStatus.ARCHIVED.value:
            await _change_status(session, principal, agent, AgentStatus.ARCHIVED.value)
    await forget_agent(services, agent_id)


async def publish(
    services: Services, principal: Principal, agent_id: uuid.UUID, number: int
) -> AgentRecord:
    """Version `number` answers customers from now on."""
    return await _publish(services, principal, agent_id, number, rollback=False)


async def roll_back(
    services: Services, principal: Principal, agent_id: uuid.UUID, number: int
) -> AgentRecord:
    """Publish `number` again, older than the version published now."""
    return await _publish(services, principal, agent_id, number, rollback=True)


async def _publish(
    services: Services, principal: Principal, agent_id: uuid.UUID, number: int, *, rollback: bool
) -> AgentRecord:
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        agent = await _agent_to_change(session, principal, agent_id)
        version = await _version(session, agent, number)
        previous = (await _record(session, principal, agent_id)).published_version
        if rollback and (previous is None or number >= previous):
            raise NotAnOlderVersionError(
                f"Version {number} is not older than the published version ({previous}); "
                "roll back goes to an earlier one, publish goes anywhere."
                if previous is not None
                else "Nothing is published yet, so there is nothing to roll back."
            )
        publish_version(agent, version, published_by=_actor(principal))
        await _log(
            session,
            principal,
            agent,
            "agent.rolled_back" if rollback else "agent.published",
            {"version": number, "previous_version": previous},
        )
        record = await _record(session, principal, agent_id)
    await forget_agent(services, agent_id)
    log.info("agent_published", agent_id=str(agent_id), version=number, rollback=rollback)
    return record


async def list_versions(
    services: Services, principal: Principal, agent_id: uuid.UUID, page: PageRequest
) -> tuple[AgentRecord, RowsPage[AgentVersion]]:
    """The agent (to tell which version is published) and its versions, newest first."""
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        record = await _record(session, principal, agent_id)
        return record, page.cut(await repository.versions_of(session, record.agent, page))


async def get_version(
    services: Services, principal: Principal, agent_id: uuid.UUID, number: int
) -> tuple[AgentRecord, AgentVersion]:
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        record = await _record(session, principal, agent_id)
        return record, await _version(session, record.agent, number)


async def _record(session: AsyncSession, principal: Principal, agent_id: uuid.UUID) -> AgentRecord:
    record = await repository.agent_record(session, principal.organization_id, agent_id)
    if record is None:
        raise AgentNotFoundError(agent_id)
    return record


async def _agent_to_change(
    session: AsyncSession, principal: Principal, agent_id: uuid.UUID
) -> Agent:
    agent = await repository.agent_to_change(session, principal.organization_id, agent_id)
    if agent is None:
        raise AgentNotFoundError(agent_id)
    if agent.status == AgentStatus.ARCHIVED.value:
        raise AgentArchivedError("The agent is archived: it can be read, not changed.")
    return agent


async def _version(session: AsyncSession, agent: Agent, number: int) -> AgentVersion:
    version = await repository.version_by_number(session, agent, number)
    if version is None:
        raise VersionNotFoundError(f"The agent has no version {number}.")
    return version


async def _latest_settings(session: AsyncSession, agent: Agent) -> AgentSettings:
    """What the next version builds on: the newest saved settings, published or not."""
    latest = await repository.latest_version(session, agent)
    # An agent written by other means than this API may have no version yet: its row is all.
    return AgentSettings.model_validate(latest.settings) if latest else settings_of(agent)


async def _change_status(
    session: AsyncSession, principal: Principal, agent: Agent, status: str
) -> None:
    if status == AgentStatus.ACTIVE.value and agent.published_version_id is None:
        raise NotPublishedError("Publish a version before activating the agent.")
    previous, agent.status = agent.status, status
    await _log(session, principal, agent, "agent.status_changed", {"from": previous, "to": status})


async def _log(
    session: AsyncSession, principal: Principal, agent: Agent, action: str, details: dict[str, Any]
) -> None:
    await record_activity(
        session,
        organization_id=agent.organization_id,
        actor_type=principal.actor_type,
        actor_id=str(principal.actor_id),
        action=action,
        entity_type="agent",
        entity_id=str(agent.id),
        details=details,
    )
