"""`/api/v1/rules`: named condition trees, the field catalog for the editor, and dry runs."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from agent_platform.automation.fields import CUSTOM_FIELD_PREFIX, FIELDS, OPERATORS, FieldType
from agent_platform.automation.rules import service
from agent_platform.automation.rules.schemas import (
    ConditionsDryRunIn,
    DryRunOut,
    FieldCatalogOut,
    FieldOut,
    RuleDryRunIn,
    RuleDryRunOut,
    RuleIn,
    RuleOut,
    RulePatch,
)
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/rules", tags=["automation rules"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/fields", summary="The fields and operators conditions may use (the editor's)")
async def list_fields(principal: CurrentPrincipal) -> FieldCatalogOut:
    return FieldCatalogOut(
        fields=[
            FieldOut(
                name=spec.name,
                type=spec.type.value,
                group=spec.group,
                description=spec.description,
                operators=sorted(OPERATORS[spec.type]),
            )
            for spec in FIELDS.values()
        ],
        custom_field_prefix=CUSTOM_FIELD_PREFIX,
        any_type_operators=sorted(OPERATORS[FieldType.ANY]),
    )


@router.post("/dry-run", summary="Evaluate an unsaved condition tree on a sample event")
async def dry_run_conditions(
    request: Request, principal: CurrentPrincipal, body: ConditionsDryRunIn
) -> DryRunOut:
    evaluation, facts = await service.dry_run_conditions(
        _services(request), principal.organization_id, body.conditions, body.event
    )
    return DryRunOut(matched=evaluation.matched, trace=evaluation.trace, facts=dict(facts.current))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a rule")
async def create_rule(request: Request, principal: CurrentPrincipal, body: RuleIn) -> RuleOut:
    return RuleOut.of(
        await service.create_rule(_services(request), principal.organization_id, body)
    )


@router.get("", summary="This organization's rules, newest first")
async def list_rules(
    request: Request,
    principal: CurrentPrincipal,
    enabled: bool | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[RuleOut]:
    found = await service.list_rules(
        _services(request), principal.organization_id, enabled, PageRequest.parse(limit, cursor)
    )
    return Page[RuleOut](
        items=[RuleOut.of(rule) for rule in found.items], next_cursor=found.next_cursor
    )


@router.get("/{rule_id}", summary="One rule")
async def get_rule(request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID) -> RuleOut:
    return RuleOut.of(
        await service.RULES.get(_services(request), principal.organization_id, rule_id)
    )


@router.patch("/{rule_id}", summary="Change a rule (only the fields sent)")
async def update_rule(
    request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID, body: RulePatch
) -> RuleOut:
    rule = await service.update_rule(_services(request), principal.organization_id, rule_id, body)
    return RuleOut.of(rule)


@router.delete(
    "/{rule_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a rule (refused while a trigger or sequence refers to it)",
)
async def delete_rule(
    request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID
) -> Response:
    await service.delete_rule(_services(request), principal.organization_id, rule_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{rule_id}/enable", summary="Enable a rule")
async def enable_rule(request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID) -> RuleOut:
    rule = await service.RULES.set_enabled(
        _services(request), principal.organization_id, rule_id, True
    )
    return RuleOut.of(rule)


@router.post("/{rule_id}/disable", summary="Disable a rule (references to it then match nothing)")
async def disable_rule(
    request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID
) -> RuleOut:
    rule = await service.RULES.set_enabled(
        _services(request), principal.organization_id, rule_id, False
    )
    return RuleOut.of(rule)


@router.post("/{rule_id}/dry-run", summary="Evaluate a rule on a sample event (recorded as a run)")
async def dry_run_rule(
    request: Request, principal: CurrentPrincipal, rule_id: uuid.UUID, body: RuleDryRunIn
) -> RuleDryRunOut:
    evaluation, facts, run_id = await service.dry_run_rule(
        _services(request), principal.organization_id, rule_id, body.event
    )
    return RuleDryRunOut(
        matched=evaluation.matched, trace=evaluation.trace, facts=dict(facts.current), run_id=run_id
    )
