"""The agents REST API: /api/v1/agents, its versions, publishing and rolling back."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response

from agent_platform.agent import management
from agent_platform.agent.models import AgentVersion
from agent_platform.agent.repository import AgentRecord
from agent_platform.agent.schemas import (
    AgentCreate,
    AgentOut,
    AgentPatch,
    AgentSettings,
    VersionChoice,
    VersionOut,
    VersionSummary,
)
from agent_platform.agent.versions import settings_of
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

VersionNumber = Annotated[int, Path(ge=1)]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _agent_out(record: AgentRecord) -> AgentOut:
    agent = record.agent
    return AgentOut(
        **settings_of(agent).model_dump(),
        id=agent.id,
        status=agent.status,
        published_version=record.published_version,
        latest_version=record.latest_version,
        published_at=agent.published_at,
        published_by=agent.published_by,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


def _version_summary(version: AgentVersion, record: AgentRecord) -> VersionSummary:
    return VersionSummary(
        number=version.number,
        created_at=version.created_at,
        created_by=version.created_by,
        note=version.note,
        published=version.number == record.published_version,
    )


@router.post("", status_code=201, summary="Create an agent (a draft, as version 1)")
async def create_agent(
    request: Request, principal: CurrentPrincipal, body: AgentCreate
) -> AgentOut:
    record = await management.create_agent(_services(request), principal, body)
    return _agent_out(record)


@router.get("", summary="This organization's agents, newest first (archived ones when asked)")
async def list_agents(
    request: Request,
    principal: CurrentPrincipal,
    status: Literal["draft", "active", "paused", "archived"] | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[AgentOut]:
    found = await management.list_agents(
        _services(request), principal, status, PageRequest.parse(limit, cursor)
    )
    return Page[AgentOut](
        items=[_agent_out(record) for record in found.items], next_cursor=found.next_cursor
    )


@router.get("/{agent_id}", summary="An agent")
async def get_agent(request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID) -> AgentOut:
    return _agent_out(await management.get_agent(_services(request), principal, agent_id))


@router.patch("/{agent_id}", summary="Change an agent's settings (a new version) or status")
async def update_agent(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID, body: AgentPatch
) -> AgentOut:
    record = await management.update_agent(_services(request), principal, agent_id, body)
    return _agent_out(record)


@router.delete(
    "/{agent_id}",
    status_code=204,
    response_class=Response,
    summary="Archive an agent: it stops answering; it and its versions are kept",
)
async def archive_agent(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID
) -> Response:
    await management.archive_agent(_services(request), principal, agent_id)
    return Response(status_code=204)


@router.post("/{agent_id}/publish", summary="Answer customers with this version from now on")
async def publish(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID, body: VersionChoice
) -> AgentOut:
    record = await management.publish(_services(request), principal, agent_id, body.version)
    return _agent_out(record)


@router.post("/{agent_id}/rollback", summary="Publish an older version again")
async def roll_back(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID, body: VersionChoice
) -> AgentOut:
    record = await management.roll_back(_services(request), principal, agent_id, body.version)
    return _agent_out(record)


@router.get("/{agent_id}/versions", summary="An agent's versions, newest first")
async def list_versions(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: uuid.UUID,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[VersionSummary]:
    record, found = await management.list_versions(
        _services(request), principal, agent_id, PageRequest.parse(limit, cursor)
    )
    return Page[VersionSummary](
        items=[_version_summary(version, record) for version in found.items],
        next_cursor=found.next_cursor,
    )


@router.get("/{agent_id}/versions/{number}", summary="One version, with its settings")
async def get_version(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID, number: VersionNumber
) -> VersionOut:
    record, version = await management.get_version(_services(request), principal, agent_id, number)
    return VersionOut(
        **_version_summary(version, record).model_dump(),
        settings=AgentSettings.model_validate(version.settings),
    )
