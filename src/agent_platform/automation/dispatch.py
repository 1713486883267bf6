"""Events in: from a Kommo webhook to the triggers that wait for them, each run recorded.

1. The webhook (crm.kommo.service.accept_webhook) asks one question, whether anything in the
   organization waits for the kind of events it brings (an enabled trigger, or an open
   enrollment of one of its leads), and only then defers KOMMO_EVENTS_JOB, in the same
   transaction as the inbox rows.
2. That job compares each lead with its snapshot (kommo_events), keeps the new snapshot,
   marks the echoes of our own changes with their origin (echoes), and defers one
   DISPATCH_JOB per automation event — all in one transaction, so that a retry neither loses
   a difference nor finds it twice.
3. DISPATCH_JOB reads the lead from Kommo when the event lacks it (no transaction open),
   stops the enrollments the event ends, then for every enabled trigger of the event's type
   (highest priority first) records a run: skipped (loop protection, run cap, not matched,
   each with the reason) or running, with the job that performs its actions
   (execution.RUN_ACTIONS_JOB) deferred beside it. Runs are unique per (trigger, event):
   a retried dispatch records nothing twice.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import procrastinate
import structlog
from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.runtime.daily_cap import day_start
from agent_platform.agent.runtime.working_hours import WorkingHours
from agent_platform.automation import echoes, execution, kommo_events, snapshots
from agent_platform.automation.clock import (
    agent_working_hours,
    connection_agent_id,
    organization_zone,
)
from agent_platform.automation.engine import (
    Condition,
    RuleError,
    evaluate,
    parse_condition,
)
from agent_platform.automation.events import MAX_CHAIN_DEPTH, AutomationEvent, EventType
from agent_platform.automation.facts import ConversationFacts, facts_for
from agent_platform.automation.lead_facts import read_lead_and_contact
from agent_platform.automation.models import (
    OPEN_ENROLLMENT_STATUSES,
    Enrollment,
    RunKind,
    RunStatus,
    Trigger,
)
from agent_platform.automation.rules.lookup import rules_for
from agent_platform.automation.runs.repository import counted_runs_since, record_run
from agent_platform.automation.sequences.enrollment import stop_on_event
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.webhooks import (
    CustomField,
    CustomFieldValue,
    EventFamily,
    IncomingMessage,
    KommoEvent,
)
from agent_platform.crm.models import CrmCall, CrmTask, InboxEvent
from agent_platform.db.session import transaction
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services

DISPATCH_JOB = "dispatch_automation_event"
KOMMO_EVENTS_JOB = "read_kommo_events_for_automation"
# Longer keys are hashed: the run's dedupe key column holds 200 characters.
MAX_DEDUPE_KEY = 200

log = structlog.get_logger("automation.dispatch")


# --- 1. the webhook's question ---------------------------------------------------------------


async def defer_for_webhook(
    session: AsyncSession,
    queue: procrastinate.App,
    queue_name: str,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    events: Sequence[tuple[uuid.UUID, KommoEvent]],
) -> bool:
    """Defer the reading of the newly stored `events` (inbox id, event) when anything waits
    for them; at most one query. True when deferred."""
    relevant = [
        (event_id, event) for event_id, event in events if kommo_events.possible_events(event)
    ]
    if not relevant:
        return False
    types = {kind for _, event in relevant for kind in kommo_events.possible_events(event)}
    leads = {lead for _, event in relevant if (lead := kommo_events.concerned_lead(event))}
    if not await _anything_waits(session, organization_id, connection_id, types, leads):
        return False
    await defer_in_transaction(
        session,
        queue,
        read_kommo_events_for_automation,
        queue_name,
        organization_id=str(organization_id),
        connection_id=str(connection_id),
        inbox_event_ids=[str(event_id) for event_id, _ in relevant],
    )
    return True


# --- our own records: tasks and calls stored through crm.records ------------------------------


def task_created_event(task: CrmTask) -> AutomationEvent | None:
    """The event of a task stored on a lead; None for a task on anything else."""
    if task.entity_type != "leads" or task.entity_id is None:
        return None
    return AutomationEvent(
        type=EventType.TASK_CREATED,
        occurred_at=datetime.now(UTC),
        connection_id=task.connection_id,
        lead_id=task.entity_id,
        data={"task_id": str(task.id), "text": task.text},
        key=f"task_created:{task.id}",
    )


def call_added_event(call: CrmCall) -> AutomationEvent | None:
    """The event of a call logged on a lead; None for a call on no lead."""
    if call.lead_id is None:
        return None
    return AutomationEvent(
        type=EventType.CALL_ADDED,
        occurred_at=datetime.now(UTC),
        connection_id=call.connection_id,
        lead_id=call.lead_id,
        data={
            "call_id": str(call.id),
            "direction": call.direction,
            "duration": call.duration_seconds,
        },
        key=f"call_added:{call.id}",
    )


async def defer_if_awaited(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    event: AutomationEvent | None,
) -> bool:
    """Defer the dispatch of `event` when an enabled trigger waits for its type (one query).

    A task our own action created comes here, not back by webhook: it is marked with that
    action's origin here, as kommo_events marks a webhook's echo."""
    if event is None:
        return False
    if not await _anything_waits(session, organization_id, None, [event.type], []):
        return False
    if event.connection_id is not None and event.lead_id is not None:
        origin = await echoes.consume_echo(
            session,
            connection_id=event.connection_id,
            lead_id=event.lead_id,
            event_type=event.type,
            data=event.data,
        )
        if origin is not None:
            event = replace(event, origin=origin)
    await defer_dispatch(session, services, organization_id, event)
    return True


# --- 2. Kommo events into automation events --------------------------------------------------


@platform_job(KOMMO_EVENTS_JOB)
async def read_kommo_events_for_automation(
    services: Services, *, organization_id: str, connection_id: str, inbox_event_ids: list[str]
) -> None:
    organization = uuid.UUID(organization_id)
    connection = uuid.UUID(connection_id)
    async with transaction(services.sessions) as session:
        for inbox_event_id in inbox_event_ids:
            inbox_event = await session.get(InboxEvent, uuid.UUID(inbox_event_id))
            if inbox_event is None or inbox_event.organization_id != organization:
                continue
            for event in await _automation_events(session, organization, connection, inbox_event):
                await defer_dispatch(session, services, organization, event)


async def _automation_events(
    session: AsyncSession,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    inbox_event: InboxEvent,
) -> list[AutomationEvent]:
    kommo_event = kommo_event_from_payload(inbox_event.payload)
    lead_id = kommo_events.concerned_lead(kommo_event)
    if lead_id is None:
        return []
    snapshot = None
    if kommo_event.family is EventFamily.LEADS:
        snapshot = await snapshots.locked_snapshot(
            session, organization_id=organization_id, connection_id=connection_id, lead_id=lead_id
        )
    events = kommo_events.automation_events(
        kommo_event,
        connection_id=connection_id,
        snapshot=snapshot,
        occurred_at=inbox_event.received_at,
    )
    lead = kommo_events.lead_facts_of(kommo_event)
    if lead is not None:
        await snapshots.save_snapshot(
            session,
            organization_id=organization_id,
            connection_id=connection_id,
            lead_id=lead_id,
            facts=lead,
        )
    marked = []
    for event in events:
        origin = await echoes.consume_echo(
            session,
            connection_id=connection_id,
            lead_id=lead_id,
            event_type=event.type,
            data=event.data,
        )
        marked.append(event if origin is None else replace(event, origin=origin))
    return marked


def kommo_event_from_payload(payload: Mapping[str, Any]) -> KommoEvent:
    """The event as the inbox keeps it (KommoEvent.to_payload), read back."""
    message = payload.get("message")
    return KommoEvent(
        section=payload["section"],
        family=EventFamily(payload["family"]),
        action=payload["action"],
        item_id=payload.get("item_id"),
        entity_type=payload.get("entity_type"),
        entity_id=payload.get("entity_id"),
        account_id=payload.get("account_id"),
        data=payload.get("data") or {},
        custom_fields=tuple(
            CustomField(
                field_id=field.get("id"),
                name=field.get("name"),
                code=field.get("code"),
                values=tuple(
                    CustomFieldValue(value["value"], value.get("enum_id"))
                    for value in field.get("values", ())
                ),
            )
            for field in payload.get("custom_fields", ())
        ),
        message=IncomingMessage(**message) if isinstance(message, dict) else None,
    )


# --- 3. dispatching one event ----------------------------------------------------------------


async def defer_dispatch(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    event: AutomationEvent,
    *,
    only_trigger_id: uuid.UUID | None = None,
) -> int:
    """Defer the dispatch of `event` in the session's transaction; the job's id."""
    return await defer_in_transaction(
        session,
        services.queue,
        dispatch_automation_event,
        services.settings.job_queue_name,
        organization_id=str(organization_id),
        event=event.to_json(),
        only_trigger_id=None if only_trigger_id is None else str(only_trigger_id),
    )


@platform_job(DISPATCH_JOB)
async def dispatch_automation_event(
    services: Services,
    *,
    organization_id: str,
    event: dict[str, Any],
    only_trigger_id: str | None = None,
) -> None:
    organization = uuid.UUID(organization_id)
    automation_event = AutomationEvent.from_json(event)
    structlog.contextvars.bind_contextvars(
        organization_id=organization_id, lead_id=automation_event.lead_id
    )
    automation_event = await _with_lead(services, automation_event)
    async with transaction(services.sessions) as session:
        await stop_on_event(session, organization, automation_event)
        triggers = await _triggers_for(
            session,
            organization,
            automation_event,
            None if only_trigger_id is None else uuid.UUID(only_trigger_id),
        )
        if not triggers:
            return
        context = await _evaluation_context(services, session, organization, automation_event)
        for trigger in triggers:
            await _dispatch_to(session, services, organization, trigger, automation_event, context)


async def _with_lead(services: Services, event: AutomationEvent) -> AutomationEvent:
    """The event with the lead's (and its contact's) facts read from Kommo, when it has none."""
    if event.lead is not None or event.lead_id is None or event.connection_id is None:
        return event
    found = await read_lead_and_contact(services, event.connection_id, event.lead_id)
    # Kommo's contact is the fuller; the event's keeps what only the message said.
    contact = {**(event.contact or {}), **(found.contact or {})} or None
    return replace(event, lead=found.lead, contact=contact)


@dataclass(frozen=True)
class _EvaluationContext:
    """What every trigger of one event is evaluated with."""

    zone: ZoneInfo
    working_hours: WorkingHours | None
    conversation: ConversationFacts | None


async def _dispatch_to(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    trigger: Trigger,
    event: AutomationEvent,
    context: _EvaluationContext,
) -> None:
    def record(
        status: RunStatus, *, matched: bool, trace: dict[str, Any] | None, error: str | None = None
    ) -> Any:
        return record_run(
            session,
            organization_id=organization_id,
            kind=RunKind.TRIGGER,
            event=event,
            matched=matched,
            trace=trace,
            actions=list(trigger.actions),
            status=status,
            error=error,
            trigger_id=trigger.id,
            dedupe_key=run_dedupe_key(trigger.id, event) if event.key else None,
        )

    refusal = loop_refusal(trigger.id, event)
    if refusal is not None:
        await record(RunStatus.SKIPPED, matched=False, trace=None, error=refusal)
        return
    if await _cap_reached(session, organization_id, trigger, event, context.zone):
        await record(RunStatus.SKIPPED, matched=False, trace=None, error="run cap reached")
        return
    try:
        condition = _condition(trigger.conditions, allow_rule_refs=True)
        rules = await rules_for(session, organization_id, condition)
    except RuleError as exc:
        await record(
            RunStatus.FAILED, matched=False, trace=None, error=f"invalid conditions: {exc}"
        )
        return
    facts = facts_for(
        event,
        zone=context.zone,
        now=event.occurred_at,
        working_hours=context.working_hours,
        conversation=context.conversation,
    )
    evaluation = evaluate(condition, facts, rules)
    if not evaluation.matched:
        await record(
            RunStatus.SKIPPED, matched=False, trace=evaluation.trace, error="conditions not met"
        )
        return
    run = await record(RunStatus.RUNNING, matched=True, trace=evaluation.trace)
    if run is not None:
        await execution.defer_run(session, services, organization_id, run.id)
        log.info("automation_trigger_fired", trigger_id=str(trigger.id), run_id=str(run.id))


def loop_refusal(trigger_id: uuid.UUID, event: AutomationEvent) -> str | None:
    """Why the trigger must not fire on an event its own chain caused; None when it may."""
    if str(trigger_id) in event.origin.trigger_ids:
        return "loop: the event was caused by this trigger's own action"
    if event.origin.depth >= MAX_CHAIN_DEPTH:
        return (
            f"loop: the event is {event.origin.depth} triggers deep in a chain "
            f"(at most {MAX_CHAIN_DEPTH})"
        )
    return None


def run_dedupe_key(trigger_id: uuid.UUID, event: AutomationEvent) -> str:
    key = f"{trigger_id}:{event.key}"
    if len(key) <= MAX_DEDUPE_KEY:
        return key
    return f"{trigger_id}:sha256:{hashlib.sha256(event.key.encode()).hexdigest()}"


async def _cap_reached(
    session: AsyncSession,
    organization_id: uuid.UUID,
    trigger: Trigger,
    event: AutomationEvent,
    zone: ZoneInfo,
) -> bool:
    cap = trigger.max_runs_per_lead_per_day
    if cap is None or event.lead_id is None:
        return False
    done = await counted_runs_since(
        session,
        organization_id=organization_id,
        trigger_id=trigger.id,
        connection_id=event.connection_id,
        lead_id=event.lead_id,
        since=day_start(datetime.now(UTC), zone),
    )
    return done >= cap


def _condition(tree: dict[str, Any] | None, *, allow_rule_refs: bool) -> Condition | None:
    return None if tree is None else parse_condition(tree, allow_rule_refs=allow_rule_refs)


# --- queries ---------------------------------------------------------------------------------


async def _anything_waits(
    session: AsyncSession,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID | None,
    types: Collection[EventType],
    leads: Collection[int],
) -> bool:
    """Whether an enabled trigger waits for one of `types`, or one of the connection's
    `leads` walks a sequence (which the event may stop)."""
    trigger_waits = exists().where(
        Trigger.organization_id == organization_id,
        Trigger.enabled.is_(True),
        Trigger.event_type.in_([kind.value for kind in types]),
    )
    conditions = [trigger_waits]
    if leads:
        conditions.append(
            exists().where(
                Enrollment.organization_id == organization_id,
                Enrollment.connection_id == connection_id,
                Enrollment.lead_id.in_(list(leads)),
                Enrollment.status.in_(OPEN_ENROLLMENT_STATUSES),
            )
        )
    return bool(await session.scalar(select(or_(*conditions))))


async def _triggers_for(
    session: AsyncSession,
    organization_id: uuid.UUID,
    event: AutomationEvent,
    only_trigger_id: uuid.UUID | None,
) -> list[Trigger]:
    """The enabled triggers of the event's type, highest priority first; a trigger of an agent
    only for events of that agent's connections."""
    statement = select(Trigger).where(
        Trigger.organization_id == organization_id,
        Trigger.event_type == event.type.value,
        Trigger.enabled.is_(True),
    )
    if only_trigger_id is not None:
        statement = statement.where(Trigger.id == only_trigger_id)
    triggers = list(
        await session.scalars(statement.order_by(Trigger.priority.desc(), Trigger.created_at))
    )
    if event.connection_id is None or all(trigger.agent_id is None for trigger in triggers):
        return triggers
    agent_id = await connection_agent_id(session, organization_id, event.connection_id)
    return [t for t in triggers if t.agent_id is None or t.agent_id == agent_id]


async def _evaluation_context(
    services: Services, session: AsyncSession, organization_id: uuid.UUID, event: AutomationEvent
) -> _EvaluationContext:
    zone = await organization_zone(session, organization_id)
    hours = None
    conversation = None
    if event.connection_id is not None:
        agent_id = await connection_agent_id(session, organization_id, event.connection_id)
        hours = await agent_working_hours(services, session, agent_id)
        if event.lead_id is not None:
            conversation = await _conversation_facts(
                session, organization_id, event.connection_id, event.lead_id, event.occurred_at
            )
    return _EvaluationContext(zone, hours, conversation)


async def _conversation_facts(
    session: AsyncSession,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    now: datetime,
) -> ConversationFacts | None:
    """The lead's conversation: how many times the lead wrote, minutes since it last did."""
    row = (
        await session.execute(
            select(func.count(Message.id), func.max(Message.created_at))
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Conversation.organization_id == organization_id,
                Conversation.connection_id == connection_id,
                Conversation.entity_type == "leads",
                Conversation.entity_id == lead_id,
                Message.role == "user",
            )
        )
    ).one()
    turns, last_reply = row
    if not turns:
        return None
    minutes = None if last_reply is None else max(0.0, (now - last_reply) / timedelta(minutes=1))
    return ConversationFacts(turns=int(turns), minutes_since_last_reply=minutes)
