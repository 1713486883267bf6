"""Every query on rules, and the organization's time zone that evaluations need. Each is
scoped by the organization."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import AutomationRule, Sequence, Trigger
from agent_platform.kit.pagination import PageRequest, newest_first
from agent_platform.organization.models import Organization


async def add_rule(session: AsyncSession, rule: AutomationRule) -> AutomationRule:
    session.add(rule)
    await session.flush()
    await session.refresh(rule)  # created_at and updated_at come from the database
    return rule


async def rule_of(
    session: AsyncSession,
    organization_id: uuid.UUID,
    rule_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> AutomationRule | None:
    statement = select(AutomationRule).where(
        AutomationRule.organization_id == organization_id, AutomationRule.id == rule_id
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


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
    statement = select(AutomationRule).where(AutomationRule.organization_id == organization_id)
    if enabled is not None:
        statement = statement.where(AutomationRule.enabled == enabled)
    result = await session.scalars(
        newest_first(statement, AutomationRule.created_at, AutomationRule.id, page)
    )
    return list(result)


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


async def delete_rule(session: AsyncSession, rule: AutomationRule) -> None:
    await session.delete(rule)
    await session.flush()


async def organization_timezone(session: AsyncSession, organization_id: uuid.UUID) -> str:
    zone = await session.scalar(
        select(Organization.timezone).where(Organization.id == organization_id)
    )
    return zone or "UTC"
