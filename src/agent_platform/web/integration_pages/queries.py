"""What the integrations and operations pages read that no domain repository answers yet.

Each query names the organization itself: the inbox queries run in its tenant transaction,
the job query on the engine (the organization's database role may not read the job queue).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from agent_platform.agent.models import Agent, AgentStatus
from agent_platform.crm.models import CrmConnection, InboxEvent, InboxStatus


@dataclass(frozen=True)
class AgentChoice:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class InboxHealth:
    last_received_at: datetime | None
    failed: int


@dataclass(frozen=True)
class FailedInboxEvent:
    id: uuid.UUID
    at: datetime
    source: str
    subdomain: str
    error: str | None


@dataclass(frozen=True)
class FailedJob:
    id: int
    at: datetime | None
    task_name: str
    attempts: int


async def agent_choices(session: AsyncSession, organization_id: uuid.UUID) -> list[AgentChoice]:
    """The agents a connection may be given: every one not archived, by name."""
    rows = await session.execute(
        select(Agent.id, Agent.name)
        .where(
            Agent.organization_id == organization_id,
            Agent.status != AgentStatus.ARCHIVED.value,
        )
        .order_by(Agent.name, Agent.id)
    )
    return [AgentChoice(row.id, row.name) for row in rows]


async def inbox_health(
    session: AsyncSession, organization_id: uuid.UUID
) -> dict[uuid.UUID, InboxHealth]:
    """Per connection: when its last webhook came, and how many of its events failed."""
    rows = await session.execute(
        select(
            InboxEvent.connection_id,
            func.max(InboxEvent.received_at).label("last_received_at"),
            func.count().filter(InboxEvent.status == InboxStatus.FAILED.value).label("failed"),
        )
        .where(InboxEvent.organization_id == organization_id)
        .group_by(InboxEvent.connection_id)
    )
    return {row.connection_id: InboxHealth(row.last_received_at, row.failed) for row in rows}


async def failed_inbox_events(
    session: AsyncSession, organization_id: uuid.UUID, limit: int
) -> list[FailedInboxEvent]:
    rows = await session.execute(
        select(
            InboxEvent.id,
            func.coalesce(InboxEvent.handled_at, InboxEvent.received_at).label("at"),
            InboxEvent.source,
            CrmConnection.subdomain,
            InboxEvent.error,
        )
        .join(CrmConnection, CrmConnection.id == InboxEvent.connection_id)
        .where(
            InboxEvent.organization_id == organization_id,
            InboxEvent.status == InboxStatus.FAILED.value,
        )
        .order_by(InboxEvent.received_at.desc(), InboxEvent.id.desc())
        .limit(limit)
    )
    return [FailedInboxEvent(row.id, row.at, row.source, row.subdomain, row.error) for row in rows]


_UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# A job names its organization in one of three ways: directly, by its connection, or by the
# webhook event it acts on. The uuid casts sit in CASE (whose order Postgres keeps, unlike
# AND's), so a job with other arguments is skipped rather than breaking the query.
_FAILED_JOBS = text(
    f"""
    SELECT j.id, j.task_name, j.attempts,
           (SELECT max(e.at) FROM procrastinate_events e
             WHERE e.job_id = j.id AND e.type = 'failed') AS failed_at
      FROM procrastinate_jobs j
     WHERE j.status = 'failed'
       AND (j.args->>'organization_id' = :organization_id
            OR EXISTS (SELECT 1 FROM crm_connections c
                        WHERE c.organization_id = CAST(:organization_id AS uuid)
                          AND c.id = CASE WHEN j.args->>'connection_id' ~ '{_UUID_PATTERN}'
                                          THEN CAST(j.args->>'connection_id' AS uuid) END)
            OR EXISTS (SELECT 1 FROM inbox_events i
                        WHERE i.organization_id = CAST(:organization_id AS uuid)
                          AND i.id = CASE WHEN j.args->>'inbox_event_id' ~ '{_UUID_PATTERN}'
                                          THEN CAST(j.args->>'inbox_event_id' AS uuid) END))
     ORDER BY failed_at DESC NULLS LAST, j.id DESC
     LIMIT :limit
    """  # noqa: S608 - constants only, the values are bound
)


async def failed_jobs(
    engine: AsyncEngine, organization_id: uuid.UUID, limit: int
) -> list[FailedJob]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            _FAILED_JOBS, {"organization_id": str(organization_id), "limit": limit}
        )
    return [FailedJob(row.id, row.failed_at, row.task_name, row.attempts) for row in rows]
