"""Every query on rules, and the organization's time zone that evaluations need. Each is
scoped by the organization."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import AutomationRule, Sequence, Trigger
from agent_platform.automation.resources import newest_rows
from agent_platform.kit.pagination import PageRequest


async def rules_by_ids(
    session: AsyncSession, organization_id: uuid.UUID, rule_ids: Collection[uuid.UUID]
) -> list[AutomationRule]:
    if not rule_ids:
        return []
    result = await session.scalars(
        select(AutomationRule).where(
            AutomationRule.organization_id == organization_id,
            AutomationRule.id.in_(list(rule_ids)),
        )
    )
    return list(result)


async def list_rules(
    session: AsyncSession, organization_id: uuid.UUID, enabled: bool | None, page: PageRequest
) -> list[AutomationRule]:
    return await newest_rows(
        session, AutomationRule, organization_id, page, {AutomationRule.enabled: enabled}
    )


async def users_of_rule(
    session: AsyncSession, organization_id: uuid.UUID, rule_id: uuid.UUID
) -> list[str]:
    """The triggers and sequences whose conditions refer to the rule, as "trigger <id>"."""
    # A rule id is a UUID: found in the JSON's text only where it is a reference's value.
    needle = f'%"{rule_id}"%'
    triggers = await session.scalars(
        select(Trigger.id).where(
            Trigger.organization_id == organization_id,
            cast(Trigger.conditions, String).like(needle),
        )
    )
    sequences = await session.scalars(
        select(Sequence.id).where(
            Sequence.organization_id == organization_id,
            cast(Sequence.steps, String).like(needle),
        )
    )
    return [f"trigger {found}" for found in triggers] + [f"sequence {found}" for found in sequences]
