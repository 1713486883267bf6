"""Triggers through the API: create, read, change, delete, enable, dry-run, start by hand.

Whatever is stored is valid as a whole: a change is merged with the stored trigger and the
result validated again (a new event type may forbid actions that the old one allowed). Rules
and sequences a trigger names must be the organization's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.clock import organization_zone
from agent_platform.automation.dispatch import defer_dispatch
from agent_platform.automation.dry_run import SampleEvent, rendered_action
from agent_platform.automation.engine import Evaluation, Facts, evaluate
from agent_platform.automation.events import TRIGGER_EVENTS, AutomationEvent, EventType
from agent_platform.automation.models import Trigger
from agent_platform.automation.outbound_webhook import signing_secret
from agent_platform.automation.resources import (
    Resource,
    RowNotFoundError,
    apply_sent,
    delete,
    saved,
)
from agent_platform.automation.rules.lookup import rules_for
from agent_platform.automation.rules.validation import (
    InvalidAutomationError,
    check_connection,
    check_rules_exist,
    check_sequences_exist,
    check_storable,
    parsed_actions,
    parsed_condition,
)
from agent_platform.automation.triggers import repository
from agent_platform.automation.triggers.repository import TriggerQuery
from agent_platform.automation.triggers.schemas import ManualRunIn, TriggerIn, TriggerPatch
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import ConflictError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.services import Services

SILENCE_EVENTS = frozenset({EventType.LEAD_SILENT, EventType.MANAGER_SILENT})
MAX_SILENCE_MINUTES = 43_200
MAX_CRON_LENGTH = 100


class TriggerNotFoundError(RowNotFoundError):
    code = "trigger_not_found"
    noun = "trigger"


TRIGGERS = Resource(Trigger, TriggerNotFoundError)


class TriggerDisabledError(ConflictError):
    code = "trigger_disabled"


class TriggerNotManualError(ConflictError):
    code = "trigger_not_manual"


@dataclass(frozen=True)
class TriggerDefinition:
    """A trigger's event, conditions and actions, validated together."""

    event: dict[str, Any]
    event_type: EventType
    conditions: dict[str, Any] | None
    actions: list[dict[str, Any]]


def parse_trigger_event(raw: object) -> dict[str, Any]:
    """`{"type": ...}` with the parameters its type needs, and no others."""
    check_storable(raw, "event")
    if not isinstance(raw, dict):
        raise InvalidAutomationError("event", 'must be an object such as {"type": "lead_created"}')
    event_type = next((kind for kind in TRIGGER_EVENTS if kind.value == raw.get("type")), None)
    if event_type is None:
        known = ", ".join(sorted(TRIGGER_EVENTS))
        raise InvalidAutomationError("event.type", f"must be one of {known}")
    allowed = {"type"}
    event: dict[str, Any] = {"type": event_type.value}
    if event_type in SILENCE_EVENTS:
        allowed.add("after_minutes")
        minutes = raw.get("after_minutes")
        if (
            not isinstance(minutes, int)
            or isinstance(minutes, bool)
            or not 1 <= minutes <= MAX_SILENCE_MINUTES
        ):
            raise InvalidAutomationError(
                "event.after_minutes",
                f"{event_type.value} needs after_minutes, a whole number from 1 to "
                f"{MAX_SILENCE_MINUTES}",
            )
        event["after_minutes"] = minutes
    if event_type is EventType.SCHEDULE:
        allowed.add("cron")
        event["cron"] = _cron(raw.get("cron"))
    extra = sorted(set(raw) - allowed)
    if extra:
        raise InvalidAutomationError(f"event.{extra[0]}", f"{event_type.value} takes no {extra[0]}")
    return event


def _cron(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidAutomationError("event.cron", 'schedule needs cron, such as "0 10 * * 1-5"')
    expression = " ".join(value.split())
    if len(expression) > MAX_CRON_LENGTH or len(expression.split(" ")) != 5:
        raise InvalidAutomationError(
            "event.cron", "must have five fields: minute hour day-of-month month day-of-week"
        )
    if not croniter.is_valid(expression):
        raise InvalidAutomationError("event.cron", f"{expression!r} is not a valid cron expression")
    return expression


async def _validated(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    *,
    event: object,
    conditions: object,
    actions: object,
    agent_id: uuid.UUID | None,
) -> TriggerDefinition:
    stored_event = parse_trigger_event(event)
    event_type = EventType(stored_event["type"])
    condition = parsed_condition(conditions, allow_rule_refs=True)
    stored_actions = parsed_actions(
        actions,
        event_type=event_type,
        in_sequence=False,
        allow_private_networks=services.settings.automation_webhook_allow_private_networks,
    )
    await check_rules_exist(session, organization_id, condition, "conditions")
    await check_sequences_exist(session, organization_id, stored_actions, "actions")
    if agent_id is not None and not await repository.agent_exists(
        session, organization_id, agent_id
    ):
        raise InvalidAutomationError("agent_id", f"no agent {agent_id} in this organization")
    return TriggerDefinition(
        event=stored_event,
        event_type=event_type,
        conditions=conditions if isinstance(conditions, dict) else None,
        actions=stored_actions,
    )


async def create_trigger(
    services: Services, organization_id: uuid.UUID, body: TriggerIn
) -> Trigger:
    async with tenant_transaction(services.sessions, organization_id) as session:
        definition = await _validated(
            session,
            services,
            organization_id,
            event=body.event,
            conditions=body.conditions,
            actions=body.actions,
            agent_id=body.agent_id,
        )
        return await saved(
            session,
            Trigger(
                organization_id=organization_id,
                agent_id=body.agent_id,
                name=body.name,
                event=definition.event,
                event_type=definition.event_type.value,
                conditions=definition.conditions,
                actions=definition.actions,
                priority=body.priority,
                enabled=body.enabled,
                max_runs_per_lead_per_day=body.max_runs_per_lead_per_day,
            ),
        )


async def list_triggers(
    services: Services, organization_id: uuid.UUID, query: TriggerQuery, page: PageRequest
) -> RowsPage[Trigger]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return page.cut(await repository.list_triggers(session, organization_id, query, page))


async def update_trigger(
    services: Services, organization_id: uuid.UUID, trigger_id: uuid.UUID, patch: TriggerPatch
) -> Trigger:
    sent = patch.model_fields_set
    async with tenant_transaction(services.sessions, organization_id) as session:
        trigger = await TRIGGERS.found(session, organization_id, trigger_id, for_update=True)
        definition = await _validated(
            session,
            services,
            organization_id,
            event=patch.event if "event" in sent else trigger.event,
            conditions=patch.conditions if "conditions" in sent else trigger.conditions,
            actions=patch.actions if "actions" in sent else trigger.actions,
            agent_id=patch.agent_id if "agent_id" in sent else trigger.agent_id,
        )
        trigger.event = definition.event
        trigger.event_type = definition.event_type.value
        trigger.conditions = definition.conditions
        trigger.actions = definition.actions
        apply_sent(
            trigger,
            patch,
            ("name", "priority", "enabled"),
            nullable=("agent_id", "max_runs_per_lead_per_day"),
        )
        return await saved(session, trigger)


async def delete_trigger(
    services: Services, organization_id: uuid.UUID, trigger_id: uuid.UUID
) -> None:
    async with tenant_transaction(services.sessions, organization_id) as session:
        trigger = await TRIGGERS.found(session, organization_id, trigger_id, for_update=True)
        await delete(session, trigger)


@dataclass(frozen=True)
class TriggerDryRun:
    evaluation: Evaluation
    facts: Facts
    would_perform: list[dict[str, Any]]


async def dry_run_trigger(
    services: Services, organization_id: uuid.UUID, trigger_id: uuid.UUID, sample: SampleEvent
) -> TriggerDryRun:
    """The trigger's conditions on the sample, and its actions as they would be performed;
    nothing is done and nothing recorded."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        trigger = await TRIGGERS.found(session, organization_id, trigger_id)
        condition = parsed_condition(trigger.conditions, allow_rule_refs=True)
        rules = await rules_for(session, organization_id, condition)
        zone = await organization_zone(session, organization_id)
    event = sample.event(EventType(trigger.event_type))
    facts = sample.facts(event, zone)
    evaluation = evaluate(condition, facts, rules)
    would_perform = (
        [rendered_action(action, facts.current) for action in trigger.actions]
        if evaluation.matched
        else []
    )
    return TriggerDryRun(evaluation, facts, would_perform)


async def run_manually(
    services: Services, organization_id: uuid.UUID, trigger_id: uuid.UUID, body: ManualRunIn
) -> int:
    """Defer the dispatch of a `manual` event for this trigger only: the job's id."""
    # Not the tenant role: deferring writes the queue's tables, which are no organization's.
    async with transaction(services.sessions) as session:
        trigger = await TRIGGERS.found(session, organization_id, trigger_id)
        if not trigger.enabled:
            raise TriggerDisabledError("The trigger is disabled: enable it to run it.")
        if trigger.event_type != EventType.MANUAL.value:
            # Dispatch finds triggers by the event's type: only a `manual` one answers this.
            raise TriggerNotManualError(
                f"The trigger waits for {trigger.event_type}; only a trigger of the `manual` "
                "event is started by hand."
            )
        await check_connection(session, organization_id, body.connection_id)
        event = AutomationEvent(
            type=EventType.MANUAL,
            occurred_at=datetime.now(UTC),
            connection_id=body.connection_id,
            lead_id=body.lead_id,
            key=f"manual:{uuid.uuid4()}",
        )
        return await defer_dispatch(
            session, services, organization_id, event, only_trigger_id=trigger.id
        )


def webhook_secret(services: Services, organization_id: uuid.UUID) -> str:
    secret_key = services.settings.secret_key
    assert secret_key is not None, "ensure_secrets() provides it"
    return signing_secret(secret_key.get_secret_value(), organization_id)
