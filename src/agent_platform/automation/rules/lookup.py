"""The saved rules a condition tree refers to (`{"rule": id}`), as the engine takes them: by
dispatch, sequence steps and dry runs alike."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.engine import Condition, RuleError, parse_condition, rule_ids
from agent_platform.automation.rules import repository


async def rules_for(
    session: AsyncSession, organization_id: uuid.UUID, condition: Condition | None
) -> dict[str, Condition | None]:
    """The rules the tree refers to: a disabled rule is None (it matches nothing); a deleted
    one is left out (the engine's trace says it does not exist)."""
    if condition is None:
        return {}
    ids = set()
    for found in rule_ids(condition):
        try:
            ids.add(uuid.UUID(found))
        except ValueError:
            continue
    return {
        str(rule.id): _stored_condition(rule.conditions) if rule.enabled else None
        for rule in await repository.rules_by_ids(session, organization_id, ids)
    }


def _stored_condition(tree: object) -> Condition | None:
    """A referenced rule's stored tree for the engine. It was valid when stored; one the engine
    no longer accepts is taken as disabled (None: matches nothing) rather than failing every
    evaluation that refers to it."""
    try:
        return parse_condition(tree, allow_rule_refs=False)
    except RuleError:
        return None
