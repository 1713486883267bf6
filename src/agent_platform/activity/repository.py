"""Every query on the activity log."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.models import ActivityLog


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
