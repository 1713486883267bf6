"""Rules through the API: create, read, change, delete, enable, and evaluate against a sample.

A rule's tree is validated by the engine before it is stored (a rule may not refer to other
rules: references are one level deep, so no cycle can form). Deleting a rule that a trigger or
sequence refers to is refused: their conditions would silently stop matching.
"""

from __future__ import annotations

import uuid
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.dry_run import SampleEvent, zone_named
from agent_platform.automation.engine import (
    Condition,
    Evaluation,
    Facts,
    RuleError,
    evaluate,
    parse_condition,
    rule_ids,
)
from agent_platform.automation.events import EventType
from agent_platform.automation.models import AutomationRule, RunKind, RunStatus
from agent_platform.automation.rules import repository
from agent_platform.automation.rules.schemas import RuleIn, RulePatch
from agent_platform.automation.rules.validation import (
    InvalidAutomationError,
    check_rules_exist,
    parsed_condition,
)
from agent_platform.automation.runs.repository import record_run
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import ConflictError, NotFoundError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.services import Services


class RuleNotFoundError(NotFoundError):
    code = "rule_not_found"

    def __init__(self, rule_id: uuid.UUID) -> None:
        super().__init__(f"No rule {rule_id} in this organization.")


class RuleInUseError(ConflictError):
    code = "rule_in_use"


def _rule_condition(tree: object) -> Condition:
    condition = parsed_condition(tree, allow_rule_refs=False)
    if condition is None:
        raise InvalidAutomationError("conditions", "a rule needs a condition tree")
    return condition


async def create_rule(
    services: Services, organization_id: uuid.UUID, body: RuleIn
) -> AutomationRule:
    _rule_condition(body.conditions)
    async with tenant_transaction(services.sessions, organization_id) as session:
        return await repository.add_rule(
            session,
            AutomationRule(
                organization_id=organization_id,
                name=body.name,
                description=body.description,
                conditions=body.conditions,
                enabled=body.enabled,
            ),
        )


async def get_rule(
    services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID
) -> AutomationRule:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return await _rule(session, organization_id, rule_id)


async def list_rules(
    services: Services, organization_id: uuid.UUID, enabled: bool | None, page: PageRequest
) -> RowsPage[AutomationRule]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return page.cut(await repository.list_rules(session, organization_id, enabled, page))


async def update_rule(
    services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID, patch: RulePatch
) -> AutomationRule:
    sent = patch.model_fields_set
    if "conditions" in sent:
        _rule_condition(patch.conditions)
    async with tenant_transaction(services.sessions, organization_id) as session:
        rule = await _rule(session, organization_id, rule_id, for_update=True)
        if "conditions" in sent:
            rule.conditions = patch.conditions
        for name in ("name", "description", "enabled"):
            value = getattr(patch, name)
            if name in sent and value is not None:
                setattr(rule, name, value)
        await session.flush()
        await session.refresh(rule)
    return rule


async def set_enabled(
    services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID, enabled: bool
) -> AutomationRule:
    async with tenant_transaction(services.sessions, organization_id) as session:
        rule = await _rule(session, organization_id, rule_id, for_update=True)
        rule.enabled = enabled
        await session.flush()
        await session.refresh(rule)
    return rule


async def delete_rule(services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID) -> None:
    async with tenant_transaction(services.sessions, organization_id) as session:
        rule = await _rule(session, organization_id, rule_id, for_update=True)
        users = await repository.users_of_rule(session, organization_id, rule_id)
        if users:
            raise RuleInUseError(
                f"The rule is used by {', '.join(users)}: remove it from their conditions first.",
                details={"used_by": users},
            )
        await repository.delete_rule(session, rule)


async def dry_run_rule(
    services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID, sample: SampleEvent
) -> tuple[Evaluation, Facts, uuid.UUID | None]:
    """The rule evaluated on the sample, recorded as a run of kind `rule` (its id returned)."""
    async with transaction(services.sessions) as session:
        rule = await _rule(session, organization_id, rule_id)
        zone = await evaluation_zone(session, organization_id)
        event = sample.event(EventType.MANUAL)
        facts = sample.facts(event, zone)
        evaluation = evaluate(_rule_condition(rule.conditions), facts)
        run = await record_run(
            session,
            organization_id=organization_id,
            kind=RunKind.RULE,
            event=event,
            matched=evaluation.matched,
            trace=evaluation.trace,
            actions=[],
            status=RunStatus.SUCCEEDED if evaluation.matched else RunStatus.SKIPPED,
            rule_id=rule.id,
        )
    return evaluation, facts, None if run is None else run.id


async def dry_run_conditions(
    services: Services, organization_id: uuid.UUID, tree: object, sample: SampleEvent
) -> tuple[Evaluation, Facts]:
    """An unsaved tree (which may refer to saved rules) evaluated on the sample; not recorded."""
    condition = parsed_condition(tree, allow_rule_refs=True)
    async with tenant_transaction(services.sessions, organization_id) as session:
        await check_rules_exist(session, organization_id, condition, "conditions")
        rules = await rules_for(session, organization_id, condition)
        zone = await evaluation_zone(session, organization_id)
    event = sample.event(EventType.MANUAL)
    facts = sample.facts(event, zone)
    return evaluate(condition, facts, rules), facts


async def rules_for(
    session: AsyncSession, organization_id: uuid.UUID, condition: Condition | None
) -> dict[str, Condition | None]:
    """The rules the tree refers to, as the engine takes them: a disabled rule is None (it
    matches nothing); a deleted one is left out."""
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


async def evaluation_zone(session: AsyncSession, organization_id: uuid.UUID) -> ZoneInfo:
    return zone_named(await repository.organization_timezone(session, organization_id))


def _stored_condition(tree: object) -> Condition | None:
    """A referenced rule's stored tree for the engine. It was valid when stored; one the engine
    no longer accepts is taken as disabled (None: matches nothing) rather than failing every
    evaluation that refers to it."""
    try:
        return parse_condition(tree, allow_rule_refs=False)
    except RuleError:
        return None


async def _rule(
    session: AsyncSession,
    organization_id: uuid.UUID,
    rule_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> AutomationRule:
    rule = await repository.rule_of(session, organization_id, rule_id, for_update=for_update)
    if rule is None:
        raise RuleNotFoundError(rule_id)
    return rule
