"""Writing again to a customer who went quiet: the job the schedule_follow_up tool defers
(agent.tool_calls), once per tool call.

1. decide, with the conversation's row locked as the reply flow locks it: nothing to do when
   the customer or a manager wrote since the follow-up was scheduled, or the agent may not
   speak there (stopped, handed off, paused, no active agent or connection), each recorded
   with its reason; outside working hours, the job deferred again to the next opening;
2. the agent's turn (agent.turn), told that this is a follow-up, its note given as data;
3. the reply stored and sent as every reply is (agent.service), under the delivery key
   "follow_up:<call id>": a retried job resumes the delivery and never writes twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.repository import record_activity
from agent_platform.agent.manager_messages import OWN_MSGID_PREFIX
from agent_platform.agent.models import AgentStatus
from agent_platform.agent.published import PublishedAgent, published_agent
from agent_platform.agent.reply_context import ReplyContext
from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.working_hours import is_open, next_opening
from agent_platform.agent.service import deliver, keep_turn_result, turn_request
from agent_platform.agent.tool_calls import FOLLOW_UP_JOB
from agent_platform.agent.turn import generate
from agent_platform.conversation import queries
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.delivery import (
    ReplyConnection,
    UndeliverableReplyError,
    route_reply,
)
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import ConnectionStatus, CrmDelivery, DeliveryStatus
from agent_platform.db.session import transaction
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services

log = structlog.get_logger("agent.follow_up")

FOLLOW_UP_INSTRUCTIONS = (
    "\n\nThe customer has not answered since your last message and you planned to follow up "
    "now. Write one short, friendly message that picks the conversation up again; do not "
    "repeat your last message. The data block holds the note you left for this follow-up."
)


@dataclass(frozen=True)
class FollowUp:
    """The job's arguments: which tool call scheduled it, when, and its note."""

    organization_id: uuid.UUID
    conversation_id: uuid.UUID
    call_id: str
    topic: str
    scheduled_at: datetime

    @property
    def delivery_key(self) -> str:
        return f"follow_up:{self.call_id}"

    @property
    def msgid(self) -> str:
        return f"{OWN_MSGID_PREFIX}follow-up-{self.call_id}"


@platform_job(FOLLOW_UP_JOB)
async def send_follow_up(
    services: Services,
    *,
    organization_id: str,
    conversation_id: str,
    call_id: str,
    topic: str,
    scheduled_at: str,
) -> None:
    follow_up = FollowUp(
        organization_id=uuid.UUID(organization_id),
        conversation_id=uuid.UUID(conversation_id),
        call_id=call_id,
        topic=topic,
        scheduled_at=datetime.fromisoformat(scheduled_at),
    )
    to_send = await _decide(services, follow_up)
    if to_send is None:
        return
    context, delivery = to_send
    if delivery is None:
        delivery = await _generate_and_store(services, follow_up, context)
        if delivery is None:
            return
    await deliver(services, context, delivery)


def why_not_now(
    conversation: Conversation, messages: list[Message], follow_up: FollowUp, now: datetime
) -> str | None:
    """Why the follow-up must not be sent at all; None when nothing stands in its way.

    `messages` are the conversation's newest, as queries.messages_of reads them."""
    if any(m.role == "user" and m.created_at > follow_up.scheduled_at for m in messages):
        return "the customer wrote since"
    manager_wrote = conversation.last_manager_message_at
    if manager_wrote is not None and manager_wrote > follow_up.scheduled_at:
        return "a manager wrote since"
    if conversation.stopped_at is not None:
        return "the agent was stopped in this conversation"
    if conversation.handed_off_at is not None:
        return "the conversation was handed off"
    if conversation.agent_paused_until is not None and now < conversation.agent_paused_until:
        return "the agent is paused in this conversation"
    return None


async def _decide(
    services: Services, follow_up: FollowUp
) -> tuple[ReplyContext, CrmDelivery | None] | None:
    """What to send, with the delivery already stored when an earlier attempt got that far;
    None when nothing is to be sent now."""
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        conversation = await conversations.conversation_of(
            session, follow_up.organization_id, follow_up.conversation_id
        )
        if conversation is None or conversation.connection_id is None:
            log.info("follow_up_skipped", reason="no Kommo conversation")
            return None
        stored = await crm.delivery_by_key(session, follow_up.delivery_key)
        if stored is not None and stored.status == DeliveryStatus.SENT.value:
            return None
        messages = await queries.messages_of(session, conversation)
        try:
            context = await reply_context_for(session, services, conversation, messages)
        except CannotWriteError as exc:
            await _skipped(session, follow_up, conversation, str(exc))
            return None
        # A stored delivery was decided by an earlier attempt: it is finished, not decided again.
        if stored is not None:
            return context, stored
        reason = why_not_now(conversation, messages, follow_up, now)
        if reason is None and await conversations.pending_customer_events(session, conversation):
            reason = "the customer wrote since"
        if reason is not None:
            await _skipped(session, follow_up, conversation, reason)
            return None
        if await _postponed_to_opening(
            session, services, follow_up, conversation, context.agent, now
        ):
            return None
        return context, None


class CannotWriteError(Exception):
    """Why the agent cannot write in a conversation now, said for the record."""


async def reply_context_for(
    session: AsyncSession,
    services: Services,
    conversation: Conversation,
    messages: list[Message],
) -> ReplyContext:
    """How the agent writes to the customer of `conversation` when no new message of theirs
    asks it to (a follow-up, an automation's message): through the conversation's connection,
    routed as the answer to the customer's newest message (`messages` are the conversation's
    newest, as queries.messages_of reads them). CannotWriteError says why there is no way."""
    connection = (
        await crm.get_connection(session, conversation.connection_id)
        if conversation.connection_id is not None
        else None
    )
    if connection is None or connection.status != ConnectionStatus.ACTIVE.value:
        raise CannotWriteError("the connection is not active")
    agent = (
        await published_agent(services, session, connection.agent_id)
        if connection.agent_id is not None
        else None
    )
    if agent is None or agent.status != AgentStatus.ACTIVE.value:
        raise CannotWriteError("no active agent")
    last_customer_event_id = next(
        (m.inbox_event_id for m in reversed(messages) if m.role == "user"), None
    )
    event = (
        await crm.get_inbox_event(session, last_customer_event_id)
        if last_customer_event_id is not None
        else None
    )
    if event is None:
        raise CannotWriteError("no customer message")
    message = IncomingMessage(**event.payload["message"])
    try:
        route = route_reply(ReplyConnection.of(connection), message, None, bot_name=agent.name)
    except UndeliverableReplyError as exc:
        raise CannotWriteError(str(exc)) from exc
    return ReplyContext(
        organization_id=conversation.organization_id,
        connection_id=connection.id,
        connection=ReplyConnection.of(connection),
        route=route,
        conversation_id=conversation.id,
        inbox_event_id=event.id,
        message=message,
        agent=agent,
        # Unprompted, it answers no message of the customer's: it covers none.
        covered_event_ids=(),
    )


async def _postponed_to_opening(
    session: AsyncSession,
    services: Services,
    follow_up: FollowUp,
    conversation: Conversation,
    agent: PublishedAgent,
    now: datetime,
) -> bool:
    """Outside the agent's working hours: the job deferred again to the next opening (or
    dropped when the schedule never opens again). Whether it was."""
    hours = reply_rules(agent).working_hours
    if hours is None or is_open(hours, now):
        return False
    opening = next_opening(hours, now)
    if opening is None:
        await _skipped(session, follow_up, conversation, "the working hours never open again")
        return True
    await defer_in_transaction(
        session,
        services.queue,
        send_follow_up,
        services.settings.job_queue_name,
        schedule_at=opening,
        organization_id=str(follow_up.organization_id),
        conversation_id=str(follow_up.conversation_id),
        call_id=follow_up.call_id,
        topic=follow_up.topic,
        scheduled_at=follow_up.scheduled_at.isoformat(),
    )
    await _record(
        session, follow_up, conversation, "follow_up.postponed", until=opening.isoformat()
    )
    return True


async def _generate_and_store(
    services: Services, follow_up: FollowUp, context: ReplyContext
) -> CrmDelivery | None:
    """The agent's follow-up stored with its delivery; None when the turn hands over."""
    agent = context.agent.model_copy(
        update={"instructions": context.agent.instructions + FOLLOW_UP_INSTRUCTIONS}
    )
    request = replace(
        turn_request(services, context),
        agent=agent,
        question=follow_up.topic,
        follow_up_note=follow_up.topic,
    )
    result = await generate(services, request)
    async with transaction(services.sessions) as session:
        return await keep_turn_result(
            session,
            services,
            context,
            result,
            key=follow_up.delivery_key,
            msgid=follow_up.msgid,
        )


async def _skipped(
    session: AsyncSession, follow_up: FollowUp, conversation: Conversation, reason: str
) -> None:
    await _record(session, follow_up, conversation, "follow_up.skipped", reason=reason)


async def _record(
    session: AsyncSession,
    follow_up: FollowUp,
    conversation: Conversation,
    action: str,
    **details: str,
) -> None:
    log.info(action.replace(".", "_"), call_id=follow_up.call_id, **details)
    await record_activity(
        session,
        organization_id=conversation.organization_id,
        actor_type="agent",
        actor_id=str(conversation.agent_id),
        action=action,
        entity_type=conversation.entity_type,
        entity_id=str(conversation.entity_id),
        details={
            "conversation_id": str(conversation.id),
            "call_id": follow_up.call_id,
            **details,
        },
    )
