"""The lead as the last webhook showed it: what the next one is compared with (kommo_events)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import LeadSnapshot


async def locked_snapshot(
    session: AsyncSession, *, organization_id: uuid.UUID, connection_id: uuid.UUID, lead_id: int
) -> dict[str, Any] | None:
    """The lead's facts, locked until the transaction ends: two webhooks about one lead are
    compared one after the other, never both with the same snapshot."""
    facts: dict[str, Any] | None = await session.scalar(
        select(LeadSnapshot.facts)
        .where(
            LeadSnapshot.organization_id == organization_id,
            LeadSnapshot.connection_id == connection_id,
            LeadSnapshot.lead_id == lead_id,
        )
        .with_for_update()
    )
    return facts


async def save_snapshot(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    facts: dict[str, Any],
) -> None:
    statement = insert(LeadSnapshot).values(
        id=uuid.uuid4(),
        organization_id=organization_id,
        connection_id=connection_id,
        lead_id=lead_id,
        facts=facts,
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[LeadSnapshot.connection_id, LeadSnapshot.lead_id],
            set_={"facts": statement.excluded.facts},
        )
    )
