"""The clock automation reads time by: the organization's time zone and the working hours of
the agent that speaks on a connection. Dispatch, sequence steps, actions, the tick and dry
runs all read them here."""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.published import published_agent
from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.working_hours import WorkingHours
from agent_platform.crm.models import CrmConnection
from agent_platform.organization.models import Organization
from agent_platform.services import Services

UTC_ZONE = ZoneInfo("UTC")


def zone_named(name: str | None) -> ZoneInfo:
    """The zone of that name; UTC when there is none or this machine does not know it."""
    if not name:
        return UTC_ZONE
    try:
        return ZoneInfo(name)
    except (ValueError, OSError, LookupError):
        return UTC_ZONE


async def organization_zone(session: AsyncSession, organization_id: uuid.UUID) -> ZoneInfo:
    name = await session.scalar(
        select(Organization.timezone).where(Organization.id == organization_id)
    )
    return zone_named(name)


async def connection_agent_id(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID
) -> uuid.UUID | None:
    """The agent that answers on the connection (None when it has none)."""
    agent_id: uuid.UUID | None = await session.scalar(
        select(CrmConnection.agent_id).where(
            CrmConnection.id == connection_id, CrmConnection.organization_id == organization_id
        )
    )
    return agent_id


async def agent_working_hours(
    services: Services, session: AsyncSession, agent_id: uuid.UUID | None
) -> WorkingHours | None:
    """The published agent's working hours; None when it has none (always open)."""
    agent = None if agent_id is None else await published_agent(services, session, agent_id)
    return None if agent is None else reply_rules(agent).working_hours
