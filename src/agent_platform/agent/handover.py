"""Handing a conversation over to a person, as the agent's handoff settings say.

All of it is written in the reply job's deciding transaction, so it happens once or not at
all: the conversation paused, the manager's task stored with its delivery and push job
(crm.records), the job that makes the manager responsible for the lead, the activity entry.
Kommo is called by those jobs, after the commit (the responsible user's job is this module's).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.repository import record_activity
from agent_platform.agent.reply_context import ReplyContext
from agent_platform.agent.runtime.decisions import HandOff
from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.handoff import HandoffRules, handoff_pause_end
from agent_platform.conversation import repository as conversations
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.models import LeadUpdate
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.models import InboxStatus
from agent_platform.crm.records.service import PlannedTask, store_task
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services

# The manager's task is due soon: a customer asked for a person and is waiting.
HANDOFF_TASK_DUE_IN = timedelta(hours=1)


def handoff_reason(decision: HandOff) -> str:
    return (
        decision.reason.value
        if decision.matched is None
        else (f"{decision.reason.value}: {decision.matched}")
    )


async def hand_over(
    session: AsyncSession,
    services: Services,
    context: ReplyContext,
    reason: str,
    rules: HandoffRules,
    now: datetime,
) -> None:
    """Give the conversation to a person, as the agent's handoff settings say, for `reason`
    (a rule's, see handoff_reason, or the turn's: the model asked, nothing to answer with)."""
    await conversations.set_conversation_state(
        session,
        context.conversation_id,
        handed_off_at=now,
        handoff_reason=reason,
        agent_paused_until=handoff_pause_end(rules, now),
    )
    lead_id = context.message.entity_id
    await _add_manager_task(session, services, context, rules, now)
    if rules.responsible_user_id is not None:
        await defer_in_transaction(
            session,
            services.queue,
            assign_lead_responsible,
            services.settings.job_queue_name,
            connection_id=str(context.connection_id),
            lead_id=str(lead_id),
            user_id=str(rules.responsible_user_id),
        )
    for event_id in context.covered_event_ids:
        await crm.finish_inbox_event(session, event_id, InboxStatus.HANDLED, reason)
    await record_activity(
        session,
        organization_id=context.organization_id,
        actor_type="agent",
        actor_id=str(context.agent.id),
        action="conversation.handed_off",
        entity_type=context.message.entity_type,
        entity_id=str(lead_id),
        details={
            "conversation_id": str(context.conversation_id),
            "reason": reason,
            "responsible_user_id": rules.responsible_user_id,
        },
    )


async def hand_over_after_turn(
    session: AsyncSession, services: Services, context: ReplyContext, reason: str | None
) -> None:
    """The agent's turn gave no reply (agent.turn: the model asked for a person, or there was
    nothing sure to answer with): the conversation goes to a person, as the agent's settings
    say."""
    await hand_over(
        session,
        services,
        context,
        reason or "the agent asked for a person",
        reply_rules(context.agent).handoff,
        datetime.now(UTC),
    )


@platform_job("assign_lead_responsible")
async def assign_lead_responsible(
    services: Services, *, connection_id: str, lead_id: str, user_id: str
) -> None:
    """Make the user responsible for the lead; a retry setting it again changes nothing."""
    change = LeadUpdate(id=int(lead_id), responsible_user_id=int(user_id))
    await call_kommo(
        services, uuid.UUID(connection_id), lambda kommo: kommo.leads.update_one(change)
    )


async def _add_manager_task(
    session: AsyncSession,
    services: Services,
    context: ReplyContext,
    rules: HandoffRules,
    now: datetime,
) -> None:
    await store_task(
        session,
        services,
        PlannedTask(
            organization_id=context.organization_id,
            connection_id=context.connection_id,
            entity_type=context.message.entity_type,
            entity_id=context.message.entity_id,
            text=rules.task_text,
            complete_till=(now + HANDOFF_TASK_DUE_IN).replace(microsecond=0),
            responsible_user_id=rules.responsible_user_id,
        ),
    )
