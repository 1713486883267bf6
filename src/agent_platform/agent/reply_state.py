"""The reply gate's inputs (agent.runtime.reply_gate), read from the conversation's rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.runtime.daily_cap import day_start
from agent_platform.agent.runtime.debounce import PendingMessage
from agent_platform.agent.runtime.reply_gate import ConversationState, ReplyRules
from agent_platform.agent.runtime.stages import LeadStage
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation
from agent_platform.crm.models import InboxEvent


async def conversation_state(
    session: AsyncSession,
    conversation: Conversation,
    rules: ReplyRules,
    now: datetime,
    lead_stage: LeadStage | None,
) -> ConversationState:
    # The day of the daily cap is the team's day: their working hours' zone, else UTC.
    zone = rules.working_hours.timezone if rules.working_hours is not None else ZoneInfo("UTC")
    return ConversationState(
        lead_stage=lead_stage,
        stopped=conversation.stopped_at is not None,
        handed_off_at=conversation.handed_off_at,
        paused_until=conversation.agent_paused_until,
        last_manager_message_at=conversation.last_manager_message_at,
        customer_turns=await conversations.count_messages(session, conversation.id, "user"),
        consecutive_errors=conversation.consecutive_errors,
        replies_today=await conversations.count_messages(
            session, conversation.id, "assistant", since=day_start(now, zone)
        ),
        out_of_hours_message_sent_at=conversation.out_of_hours_message_sent_at,
    )


def pending_messages(events: Sequence[InboxEvent]) -> list[PendingMessage]:
    return [PendingMessage(id=str(event.id), received_at=event.received_at) for event in events]


def covered_by_reply_to(event: InboxEvent, pending: Sequence[InboxEvent]) -> list[InboxEvent]:
    """The pending messages a reply to `event` answers: it and every one received before it.

    The same set whether the reply is being decided now or resumed after a crash.
    """
    position = (event.received_at, event.id)
    return [other for other in pending if (other.received_at, other.id) <= position]
