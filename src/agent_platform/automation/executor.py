"""Performing one action of a trigger's run or a sequence's step (automation.actions).

The caller (automation.execution, automation.sequences.enrollment) performs a run's actions
one by one, outside any transaction, and records each outcome in its own. An action is
performed at least once, so each is safe to repeat under its key
f"automation:{run_id}:{index}": a message, a note or a webhook's delivery id carries it, and
the CRM changes are idempotent by nature (a stage, a tag, a field, a responsible user).

Outcomes: a transient failure (kit.transient) is raised, for the job to retry; a refusal (the
CRM's, Kommo's, an unsafe URL, a receiver's non-2xx answer, no conversation to act in) is a
"failed" outcome that says why, and the run stops there; `wait` is "waiting" until resume_at.

A change Kommo reports back by webhook is announced first (automation.echoes, in its own
transaction): the echoed event inherits `context.origin`, so a trigger does not fire on the
echo of its own action and chains stay counted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.repository import record_activity
from agent_platform.agent.conversation_control import RESUMED_STATE, paused_state
from agent_platform.agent.tool_calls import FOLLOW_UP_JOB
from agent_platform.automation import echoes
from agent_platform.automation.actions import (
    Action,
    AddNote,
    AddTag,
    Assign,
    CallWebhook,
    CreateTask,
    MoveStage,
    PauseAgent,
    RemoveTag,
    ResumeAgent,
    RunAgent,
    SendMessage,
    SetField,
    StartSequence,
    StopSequence,
    Wait,
)
from agent_platform.automation.events import EventType, Origin
from agent_platform.automation.messaging import (
    MessageRefusedError,
    lead_conversation,
    send_to_lead,
)
from agent_platform.automation.outbound_webhook import call_webhook, signing_secret
from agent_platform.automation.sequences import enrollment as sequences
from agent_platform.automation.templates import render
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation
from agent_platform.crm.kommo.errors import KommoError
from agent_platform.crm.kommo.port import KommoPort
from agent_platform.crm.ports import CrmActionError
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import AppError
from agent_platform.kit.transient import is_transient
from agent_platform.queue.registry import JOBS, defer_in_transaction
from agent_platform.services import Services

log = structlog.get_logger("automation.executor")

PAUSED_BY_AUTOMATION = "paused by an automation"
# How much of a refusing receiver's answer is kept in the run log.
REFUSAL_EXCERPT_CHARACTERS = 500


@dataclass(frozen=True)
class ActionContext:
    services: Services
    organization_id: uuid.UUID
    connection_id: uuid.UUID | None
    lead_id: int | None
    facts: Mapping[str, Any]  # engine.Facts.current: the templates' values
    run_id: uuid.UUID
    index: int  # the action's place in its list
    origin: Origin  # of the events this action causes (the caller's .after(trigger))

    @property
    def key(self) -> str:
        """The action's idempotency key: the same for every attempt at it."""
        return f"automation:{self.run_id}:{self.index}"


@dataclass(frozen=True)
class ActionOutcome:
    status: Literal["succeeded", "failed", "waiting"]
    detail: dict[str, Any]  # what was done, or {"error": "..."}
    resume_at: datetime | None = None


class ActionRefusedError(Exception):
    """The action cannot be done as asked; the text says why, for the run log."""


@dataclass(frozen=True)
class _Lead:
    """The lead an action works on, and the connection it lives behind."""

    connection_id: uuid.UUID
    id: int


async def perform(action: Action, context: ActionContext) -> ActionOutcome:
    try:
        outcome = await _perform(action, context)
    except (ActionRefusedError, CrmActionError, MessageRefusedError) as exc:
        outcome = _failed(str(exc))
    except AppError as exc:  # an unsafe webhook URL, another organization's sequence
        outcome = _failed(exc.message)
    except KommoError as exc:
        if is_transient(exc):
            raise
        outcome = _failed(f"Kommo refused: {exc.detail}")
    log.info(
        "automation_action_performed",
        run_id=str(context.run_id),
        index=context.index,
        action=action.type,
        status=outcome.status,
    )
    return outcome


async def _perform(action: Action, context: ActionContext) -> ActionOutcome:
    match action:
        case Wait(minutes=wait_minutes):
            resume_at = datetime.now(UTC) + timedelta(minutes=wait_minutes)
            return ActionOutcome("waiting", {"minutes": wait_minutes}, resume_at=resume_at)
        case CallWebhook():
            return await _call_webhook(action, context)
    lead = _lead_of(context)
    match action:
        case SendMessage(text=template):
            return await _send_message(render(template, context.facts), lead, context)
        case RunAgent(instruction=instruction):
            return await _run_agent(instruction, lead, context)
        case StartSequence(sequence_id=sequence_id):
            return await _start_sequence(sequence_id, lead, context)
        case StopSequence(sequence_id=sequence_id):
            return await _stop_sequence(sequence_id, lead, context)
        case PauseAgent(minutes=pause_minutes):
            return await _pause_agent(pause_minutes, lead, context)
        case ResumeAgent():
            return await _resume_agent(lead, context)
    return await _change_lead(action, lead, context)


async def _change_lead(action: Action, lead: _Lead, context: ActionContext) -> ActionOutcome:
    """The actions that change the lead in Kommo through the CRM port."""
    port = KommoPort(context.services, context.organization_id, lead.connection_id)
    match action:
        case CreateTask(text=template, due_in_minutes=due_in_minutes):
            text = _required(render(template, context.facts), "the task's text")
            due_at = datetime.now(UTC) + timedelta(minutes=due_in_minutes)
            await _expect_echo(context, lead, EventType.TASK_CREATED, {"text": text})
            await port.create_task(lead.id, text, due_at)
            return _succeeded(text=text, due_at=due_at.isoformat())
        case AddNote(text=template):
            text = _required(render(template, context.facts), "the note")
            await port.add_note(lead.id, text, key=context.key)
            return _succeeded(text=text)
        case MoveStage(status_id=status_id, pipeline_id=pipeline_id):
            await _expect_echo(
                context, lead, EventType.LEAD_STATUS_CHANGED, {"to_status_id": status_id}
            )
            await port.move_stage(lead.id, status_id, pipeline_id)
            return _succeeded(status_id=status_id, pipeline_id=pipeline_id)
        case SetField(field=field, value=template):
            value = render(template, context.facts)
            # The field-changed event carries the field's id and its code: match the one named.
            named = {"field_id": field} if isinstance(field, int) else {"field_code": field}
            await _expect_echo(context, lead, EventType.LEAD_FIELD_CHANGED, named)
            await port.set_custom_field(lead.id, field, value)
            return _succeeded(field=field, value=value)
        case AddTag(tag=tag):
            await _expect_echo(context, lead, EventType.LEAD_TAG_ADDED, {"tag": tag})
            await port.add_tag(lead.id, tag)
            return _succeeded(tag=tag)
        case RemoveTag(tag=tag):
            await port.remove_tag(lead.id, tag)
            return _succeeded(tag=tag)
        case Assign(user_id=user_id):
            await _expect_echo(
                context, lead, EventType.LEAD_RESPONSIBLE_CHANGED, {"to_user_id": user_id}
            )
            await port.assign(lead.id, user_id)
            return _succeeded(user_id=user_id)
    raise AssertionError(f"no way to perform {action.type}")


async def _send_message(text: str, lead: _Lead, context: ActionContext) -> ActionOutcome:
    channel = await send_to_lead(
        context.services,
        organization_id=context.organization_id,
        connection_id=lead.connection_id,
        lead_id=lead.id,
        text=_required(text, "the message"),
        key=context.key,
    )
    return _succeeded(channel=channel, text=text)


async def _run_agent(instruction: str, lead: _Lead, context: ActionContext) -> ActionOutcome:
    """The agent writes to the lead as it follows up (agent.follow_up), told `instruction`.

    The follow-up's delivery key (its call id: this action's) keeps a job deferred twice, by
    a retried run, from writing twice."""
    services = context.services
    async with transaction(services.sessions) as session:
        conversation = await _conversation(session, lead, context)
        job_id = await defer_in_transaction(
            session,
            services.queue,
            # By name: the job's module (agent.follow_up) imports the reply flow, which
            # imports automation.
            JOBS[FOLLOW_UP_JOB],
            services.settings.job_queue_name,
            organization_id=str(context.organization_id),
            conversation_id=str(conversation.id),
            call_id=context.key.replace(":", "-"),
            topic=instruction,
            scheduled_at=datetime.now(UTC).isoformat(),
        )
    return _succeeded(conversation_id=str(conversation.id), job_id=job_id)


async def _start_sequence(
    sequence_id: uuid.UUID, lead: _Lead, context: ActionContext
) -> ActionOutcome:
    async with transaction(context.services.sessions) as session:
        enrollment = await sequences.enroll(
            session,
            context.services,
            organization_id=context.organization_id,
            sequence_id=sequence_id,
            connection_id=lead.connection_id,
            lead_id=lead.id,
            origin=context.origin,
            now=datetime.now(UTC),
        )
    if enrollment is None:
        # Not an error: the lead walks the sequence already (a retried run enrolled it), or
        # the sequence is switched off.
        return _succeeded(sequence_id=str(sequence_id), enrollment_id=None)
    return _succeeded(sequence_id=str(sequence_id), enrollment_id=str(enrollment.id))


async def _stop_sequence(
    sequence_id: uuid.UUID | None, lead: _Lead, context: ActionContext
) -> ActionOutcome:
    async with transaction(context.services.sessions) as session:
        stopped = await sequences.stop_enrollments(
            session,
            organization_id=context.organization_id,
            connection_id=lead.connection_id,
            lead_id=lead.id,
            sequence_id=sequence_id,
            reason=f"stopped by automation run {context.run_id}",
        )
    return _succeeded(stopped=[str(enrollment.id) for enrollment in stopped])


async def _pause_agent(minutes: int | None, lead: _Lead, context: ActionContext) -> ActionOutcome:
    now = datetime.now(UTC)
    until = None if minutes is None else now + timedelta(minutes=minutes)
    state = {**paused_state(now, PAUSED_BY_AUTOMATION), "agent_paused_until": until}
    conversation_id = await _change_conversation(lead, context, "conversation.paused", state)
    return _succeeded(
        conversation_id=str(conversation_id), until=None if until is None else until.isoformat()
    )


async def _resume_agent(lead: _Lead, context: ActionContext) -> ActionOutcome:
    conversation_id = await _change_conversation(
        lead, context, "conversation.resumed", RESUMED_STATE
    )
    return _succeeded(conversation_id=str(conversation_id))


async def _change_conversation(
    lead: _Lead, context: ActionContext, activity: str, state: Mapping[str, object]
) -> uuid.UUID:
    """The lead's conversation set to `state`, as a person does it through the API
    (agent.conversation_control); its id."""
    async with transaction(context.services.sessions) as session:
        conversation = await _conversation(session, lead, context)
        await conversations.set_conversation_state(session, conversation.id, **state)
        await record_activity(
            session,
            organization_id=context.organization_id,
            actor_type="automation",
            actor_id=str(context.run_id),
            action=activity,
            entity_type="conversation",
            entity_id=str(conversation.id),
            details={"lead_id": lead.id, "action_index": context.index},
        )
        return conversation.id


async def _call_webhook(action: CallWebhook, context: ActionContext) -> ActionOutcome:
    settings = context.services.settings
    assert settings.secret_key is not None, "ensure_secrets() provides it"
    payload = (
        _rendered(action.payload, context.facts)
        if action.payload is not None
        else _default_payload(context)
    )
    response = await call_webhook(
        action.url,
        payload,
        secret=signing_secret(settings.secret_key.get_secret_value(), context.organization_id),
        delivery_id=f"{context.run_id}:{context.index}",
        timeout_seconds=settings.automation_webhook_timeout_seconds,
        allow_private_networks=settings.automation_webhook_allow_private_networks,
    )
    if 200 <= response.status_code < 300:
        return _succeeded(response_status=response.status_code)
    return ActionOutcome(
        "failed",
        {
            "error": f"the webhook answered {response.status_code}",
            "response_status": response.status_code,
            "response_body": response.body_excerpt[:REFUSAL_EXCERPT_CHARACTERS],
        },
    )


def _default_payload(context: ActionContext) -> dict[str, Any]:
    """What a receiver gets when the action names no payload: every fact, by field name."""
    # Facts come from JSON, but a value the engine made (a time) is sent as its text.
    facts = json.loads(json.dumps(dict(context.facts), default=str))
    return {"event": facts, "lead_id": context.lead_id, "run_id": str(context.run_id)}


def _rendered(value: Any, facts: Mapping[str, Any]) -> Any:
    """`value` with every string in it rendered as a template."""
    if isinstance(value, str):
        return render(value, facts)
    if isinstance(value, list):
        return [_rendered(item, facts) for item in value]
    if isinstance(value, dict):
        return {name: _rendered(item, facts) for name, item in value.items()}
    return value


async def _expect_echo(
    context: ActionContext, lead: _Lead, event_type: EventType, match: dict[str, Any]
) -> None:
    async with tenant_transaction(context.services.sessions, context.organization_id) as session:
        await echoes.expect_echo(
            session,
            organization_id=context.organization_id,
            connection_id=lead.connection_id,
            lead_id=lead.id,
            event_type=event_type,
            match=match,
            origin=context.origin,
        )


async def _conversation(session: AsyncSession, lead: _Lead, context: ActionContext) -> Conversation:
    conversation = await lead_conversation(
        session, context.organization_id, lead.connection_id, lead.id
    )
    if conversation is None:
        raise ActionRefusedError(f"lead {lead.id} has no conversation with the agent yet")
    return conversation


def _lead_of(context: ActionContext) -> _Lead:
    if context.lead_id is None:
        raise ActionRefusedError("the event concerns no lead")
    if context.connection_id is None:
        raise ActionRefusedError("the event names no Kommo connection")
    return _Lead(context.connection_id, context.lead_id)


def _required(text: str, what: str) -> str:
    if not text.strip():
        raise ActionRefusedError(f"{what} is empty once its variables are filled in")
    return text


def _succeeded(**detail: Any) -> ActionOutcome:
    return ActionOutcome("succeeded", detail)


def _failed(error: str) -> ActionOutcome:
    return ActionOutcome("failed", {"error": error})
