"""Rules through the API: create, read, change, delete, enable, and evaluate against a sample.

A rule's tree is validated by the engine before it is stored (a rule may not refer to other
rules: references are one level deep, so no cycle can form). Deleting a rule that a trigger or
sequence refers to is refused: their conditions would silently stop matching.
"""

from __future__ import annotations

import uuid

from agent_platform.automation.clock import organization_zone
from agent_platform.automation.dry_run import SampleEvent
from agent_platform.automation.engine import (
    Condition,
    Evaluation,
    Facts,
    evaluate,
)
from agent_platform.automation.events import EventType
from agent_platform.automation.models import AutomationRule, RunKind, RunStatus
from agent_platform.automation.resources import (
    Resource,
    RowNotFoundError,
    apply_sent,
    delete,
    saved,
)
from agent_platform.automation.rules import repository
from agent_platform.automation.rules.lookup import rules_for
from agent_platform.automation.rules.schemas import RuleIn, RulePatch
from agent_platform.automation.rules.validation import (
    InvalidAutomationError,
    check_rules_exist,
    parsed_condition,
)
from agent_platform.automation.runs.repository import record_run
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import ConflictError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.services import Services


class RuleNotFoundError(RowNotFoundError):
    code = "rule_not_found"
    noun = "rule"


RULES = Resource(AutomationRule, RuleNotFoundError)


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
        return await saved(
            session,
            AutomationRule(
                organization_id=organization_id,
                name=body.name,
                description=body.description,
                conditions=body.conditions,
                enabled=body.enabled,
            ),
        )


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
        rule = await RULES.found(session, organization_id, rule_id, for_update=True)
        # A tree sent was checked above, so it is not null here.
        apply_sent(rule, patch, ("name", "description", "conditions", "enabled"))
        return await saved(session, rule)


async def delete_rule(services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID) -> None:
    async with tenant_transaction(services.sessions, organization_id) as session:
        rule = await RULES.found(session, organization_id, rule_id, for_update=True)
        users = await repository.users_of_rule(session, organization_id, rule_id)
        if users:
            raise RuleInUseError(
                f"The rule is used by {', '.join(users)}: remove it from their conditions first.",
                details={"used_by": users},
            )
        await delete(session, rule)


async def dry_run_rule(
    services: Services, organization_id: uuid.UUID, rule_id: uuid.UUID, sample: SampleEvent
) -> tuple[Evaluation, Facts, uuid.UUID | None]:
    """The rule evaluated on the sample, recorded as a run of kind `rule` (its id returned)."""
    async with transaction(services.sessions) as session:
        rule = await RULES.found(session, organization_id, rule_id)
        zone = await organization_zone(session, organization_id)
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
        zone = await organization_zone(session, organization_id)
    event = sample.event(EventType.MANUAL)
    facts = sample.facts(event, zone)
    return evaluate(condition, facts, rules), facts
