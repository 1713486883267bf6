"""Every query on the activity log."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.models import ActivityLog
from agent_platform.kit.pagination import PageRequest, RowsPage, newest_first


async def record_activity(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    actor_type: str,
    action: str,
    actor_id: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        ActivityLog(
            organization_id=organization_id,
            actor_type=actor_type,
            actor_id=actor_id,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            details=details or {},
            request_id=structlog.contextvars.get_contextvars().get("request_id"),
        )
    )
    await session.flush()


@dataclass(frozen=True)
class ActivityQuery:
    """Which activity log entries the list shows; None means any."""

    action: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None


async def list_activity(
    session: AsyncSession, organization_id: uuid.UUID, query: ActivityQuery, page: PageRequest
) -> RowsPage[ActivityLog]:
    statement = select(ActivityLog).where(ActivityLog.organization_id == organization_id)
    if query.action is not None:
        statement = statement.where(ActivityLog.action == query.action)
    if query.entity_type is not None:
        statement = statement.where(ActivityLog.entity_type == query.entity_type)
    if query.entity_id is not None:
        statement = statement.where(ActivityLog.entity_id == query.entity_id)
    rows = await session.scalars(
        newest_first(statement, ActivityLog.created_at, ActivityLog.id, page)
    )
    return page.cut(list(rows))
