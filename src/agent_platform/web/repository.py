"""The queries the dashboard's shared pieces need (page-specific ones live with their pages)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.organization.models import Organization, User


async def organization_name(session: AsyncSession, organization_id: uuid.UUID) -> str:
    result = await session.execute(
        select(Organization.name).where(Organization.id == organization_id)
    )
    return result.scalar_one()


async def two_factor_enabled(session: AsyncSession, user_id: uuid.UUID) -> bool:
    result = await session.execute(select(User.totp_enabled).where(User.id == user_id))
    return bool(result.scalar_one())
