"""Answering a customer's message: from the inbox event to a reply in Kommo, exactly once.

The work is split in short transactions with the outside calls (LLM, Kommo) between them:
1. record the customer's message (and any earlier one still unanswered), read what the agent
   needs, choose the reply's way (a note, a chat message or the Salesbot's continue:
   crm.kommo.delivery), and ask the reply gate (agent.runtime.reply_gate) what to do. All
   but an answer are done in this same transaction: wait (the job deferred again), stay
   silent, hand over to a person (agent.handover), or store the out-of-hours message;
2. generate the reply, unless an earlier attempt already stored one;
3. store the reply and its delivery (idempotency key, exact request) before sending;
4. send, after checking Kommo when an earlier attempt may already have sent it;
5. mark the delivery sent, every message the reply covers handled, and log the activity.

The conversation's row is locked by step 1, so the jobs of one lead's messages decide one
after the other: of a burst only the newest message's job answers, the others stand down.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.activity.repository import record_activity
from agent_platform.agent.handover import hand_over, hand_over_after_turn, handoff_reason
from agent_platform.agent.lead_stage import lead_stage_for
from agent_platform.agent.manager_messages import OWN_MSGID_PREFIX
from agent_platform.agent.models import AgentStatus
from agent_platform.agent.published import published_agent
from agent_platform.agent.reply_context import ReplyContext
from agent_platform.agent.reply_state import (
    conversation_state,
    covered_by_reply_to,
    pending_messages,
)
from agent_platform.agent.rescheduling import answer_again_at
from agent_platform.agent.runtime.decisions import (
    Answer,
    HandOff,
    ReplyDecision,
    SendOutOfHoursMessage,
    SilenceReason,
    StaySilent,
    WaitUntil,
)
from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.reply_gate import CustomerMessage, decide_reply
from agent_platform.agent.runtime.stages import LeadStage
from agent_platform.agent.turn import TurnRequest, TurnResult, TurnUsage, generate
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.delivery import (
    ReplyConnection,
    SalesbotContinuation,
    SentReply,
    reply_sender,
    route_reply,
)
from agent_platform.crm.kommo.port import KommoPort
from agent_platform.crm.kommo.session import call_kommo_with
from agent_platform.crm.kommo.tokens import KommoAccess
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import (
    ConnectionStatus,
    CrmDelivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
)
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("agent.reply")


def reply_key(inbox_event_id: uuid.UUID) -> str:
    """The key of what the customer gets for this message: the reply, or the out-of-hours
    message (a message gets one or the other, never both)."""
    return f"reply:{inbox_event_id}"


async def answer_inbox_event(services: Services, inbox_event_id: uuid.UUID) -> None:
    to_send = await _decide(
        services, inbox_event_id, await lead_stage_for(services, inbox_event_id)
    )
    if to_send is None:
        return
    context, delivery = to_send
    if delivery is None:
        delivery = await _generate_and_store_reply(services, context)
        if delivery is None:
            return
    await deliver(services, context, delivery)


async def deliver(services: Services, context: ReplyContext, delivery: CrmDelivery) -> None:
    """Steps 4 and 5: send the stored delivery unless an earlier attempt did, then record it.

    Shared by the reply to a message and the follow-up (agent.follow_up)."""
    sent: SentReply | None = None
    if delivery.status != DeliveryStatus.SENT.value:
        sent = await _send(services, context, delivery)
    # One transaction: a crash before it commits leaves the delivery pending, and the retry
    # reconciles with Kommo before sending again.
    async with transaction(services.sessions) as session:
        if sent is not None:
            await crm.mark_delivery_sent(session, delivery.id, sent.external_id, sent.external_ref)
        for event_id in context.covered_event_ids:
            await crm.finish_inbox_event(session, event_id, InboxStatus.HANDLED)
        await record_activity(
            session,
            organization_id=context.organization_id,
            actor_type="agent",
            actor_id=str(context.agent.id),
            action="reply.sent",
            entity_type=context.message.entity_type,
            entity_id=str(context.message.entity_id),
            details={
                "conversation_id": str(context.conversation_id),
                "delivery": delivery.idempotency_key,
                "channel": delivery.kind,
                "messages": len(context.covered_event_ids),
            },
        )
    log.info("reply_sent", delivery=delivery.idempotency_key, channel=delivery.kind)


async def _decide(
    services: Services, inbox_event_id: uuid.UUID, lead_stage: LeadStage | None
) -> tuple[ReplyContext, CrmDelivery | None] | None:
    """Step 1: what to send for this event, with the delivery already stored when known
    (a resumed reply, the out-of-hours message); None when nothing is to be sent now."""
    async with transaction(services.sessions) as session:
        event = await crm.get_inbox_event(session, inbox_event_id)
        if event is None or event.status != InboxStatus.PENDING.value:
            log.info("inbox_event_skipped", reason="missing or already handled")
            return None
        connection = await crm.get_connection(session, event.connection_id)
        agent = (
            await published_agent(services, session, connection.agent_id)
            if connection and connection.agent_id
            else None
        )
        if connection is None or connection.status != ConnectionStatus.ACTIVE.value:
            await crm.finish_inbox_event(
                session, event.id, InboxStatus.IGNORED, "connection inactive"
            )
            return None
        if agent is None or agent.status != AgentStatus.ACTIVE.value:
            await crm.finish_inbox_event(session, event.id, InboxStatus.IGNORED, "no active agent")
            return None
        structlog.contextvars.bind_contextvars(
            organization_id=str(connection.organization_id),
            agent_id=str(agent.id),
            lead_id=event.payload["message"]["entity_id"],
        )
        message = IncomingMessage(**event.payload["message"])
        reply_connection = ReplyConnection.of(connection)
        # Before any work: a reply with no way to the customer fails the event now, saying why.
        route = route_reply(
            reply_connection, message, _continuation(event.payload), bot_name=agent.name
        )
        conversation = await conversations.conversation_for(session, connection, message)
        pending = await conversations.pending_customer_events(session, conversation)
        for pending_event in pending:
            await conversations.record_customer_message(
                session, conversation, pending_event, pending_event.payload["message"]["text"]
            )
        context = ReplyContext(
            organization_id=connection.organization_id,
            connection_id=connection.id,
            connection=reply_connection,
            route=route,
            conversation_id=conversation.id,
            inbox_event_id=event.id,
            message=message,
            agent=agent,
            covered_event_ids=tuple(e.id for e in covered_by_reply_to(event, pending)),
        )
        stored = await crm.delivery_by_key(session, reply_key(event.id))
        if stored is not None:
            # An earlier attempt decided and stored what to send: finish that, decide nothing.
            return context, stored
        return await _act(session, services, context, conversation, event, pending, lead_stage)


async def _act(
    session: AsyncSession,
    services: Services,
    context: ReplyContext,
    conversation: Conversation,
    event: InboxEvent,
    pending: list[InboxEvent],
    lead_stage: LeadStage | None,
) -> tuple[ReplyContext, CrmDelivery | None] | None:
    rules = reply_rules(context.agent)
    now = datetime.now(UTC)
    decision: ReplyDecision = decide_reply(
        rules,
        await conversation_state(session, conversation, rules, now, lead_stage),
        CustomerMessage(id=str(event.id), text=context.message.text),
        pending_messages(pending),
        now,
    )
    log.info("reply_decided", decision=repr(decision))
    match decision:
        case Answer():
            return context, None
        case SendOutOfHoursMessage(text=text):
            await conversations.set_conversation_state(
                session, conversation.id, out_of_hours_message_sent_at=now
            )
            message = _agent_message(context, text)
            await conversations.add_message(session, message)
            return context, await _add_delivery(
                session,
                context,
                message.content,
                key=reply_key(context.inbox_event_id),
                msgid=_reply_msgid(context.inbox_event_id),
            )
        case WaitUntil(at=at):
            await answer_again_at(session, services, event.id, at)
        case StaySilent():
            await _stay_silent(session, context, decision, now)
        case HandOff():
            await hand_over(
                session, services, context, handoff_reason(decision), rules.handoff, now
            )
    return None


async def _stay_silent(
    session: AsyncSession, context: ReplyContext, decision: StaySilent, now: datetime
) -> None:
    reason = decision.reason
    if reason is SilenceReason.STOP_WORD:
        await conversations.set_conversation_state(
            session,
            context.conversation_id,
            stopped_at=now,
            stop_reason=f"stop word: {', '.join(decision.matched)}",
        )
    # A superseded message is answered, by the reply to the newer one; the rest are not.
    status = InboxStatus.HANDLED if reason is SilenceReason.SUPERSEDED else InboxStatus.IGNORED
    await crm.finish_inbox_event(session, context.inbox_event_id, status, reason.value)
    await record_activity(
        session,
        organization_id=context.organization_id,
        actor_type="agent",
        actor_id=str(context.agent.id),
        action="reply.withheld",
        entity_type=context.message.entity_type,
        entity_id=str(context.message.entity_id),
        details={
            "conversation_id": str(context.conversation_id),
            "reason": reason.value,
            "until": decision.until.isoformat() if decision.until else None,
            "matched": list(decision.matched),
        },
    )


async def _generate_and_store_reply(
    services: Services, context: ReplyContext
) -> CrmDelivery | None:
    """Step 2: the agent's turn (agent.turn); its reply stored with its delivery, or, when the
    turn hands over (the model asked, or nothing sure to answer with), the handoff: None."""
    try:
        result = await generate(services, turn_request(services, context))
    except Exception:
        # Counted so that the handoff rule on repeated errors sees it at the next attempt.
        async with transaction(services.sessions) as session:
            await conversations.count_reply_error(session, context.conversation_id)
        raise
    async with transaction(services.sessions) as session:
        await conversations.set_conversation_state(
            session, context.conversation_id, consecutive_errors=0
        )
        return await keep_turn_result(
            session,
            services,
            context,
            result,
            key=reply_key(context.inbox_event_id),
            msgid=_reply_msgid(context.inbox_event_id),
        )


async def keep_turn_result(
    session: AsyncSession,
    services: Services,
    context: ReplyContext,
    result: TurnResult,
    *,
    key: str,
    msgid: str,
) -> CrmDelivery | None:
    """The turn's reply stored with its delivery under `key`; or, when the turn handed over,
    the handoff (None). Shared by the reply to a message and the follow-up."""
    if result.text is None:
        await hand_over_after_turn(session, services, context, result.handoff_reason)
        return None
    return await store_reply(session, context, result.text, result.usage, key=key, msgid=msgid)


def turn_request(services: Services, context: ReplyContext) -> TurnRequest:
    """The agent's turn for the event's conversation, with the lead behind it in Kommo."""
    lead_id = context.message.entity_id if context.message.entity_type == "leads" else None
    return TurnRequest(
        organization_id=context.organization_id,
        conversation_id=context.conversation_id,
        agent_id=context.agent.id,
        agent=context.agent,
        version_id=context.agent.published_version_id,
        question=context.message.text,
        crm=KommoPort(services, context.organization_id, context.connection_id),
        lead_id=lead_id,
    )


async def store_reply(
    session: AsyncSession,
    context: ReplyContext,
    text: str,
    usage: TurnUsage,
    *,
    key: str,
    msgid: str,
) -> CrmDelivery:
    """Step 3: the agent's reply in the conversation and its delivery, stored under `key`
    (and, in Kommo's Chats, `msgid`) before it is sent. Shared with agent.follow_up."""
    message = _assistant_message(context, text, usage)
    await conversations.add_message(session, message)
    return await _add_delivery(session, context, message.content, key=key, msgid=msgid)


def _reply_msgid(inbox_event_id: uuid.UUID) -> str:
    return f"{OWN_MSGID_PREFIX}{inbox_event_id}"


async def _add_delivery(
    session: AsyncSession, context: ReplyContext, text: str, *, key: str, msgid: str
) -> CrmDelivery:
    """What the customer gets, stored under its key before it is sent."""
    return await crm.add_delivery(
        session,
        CrmDelivery(
            organization_id=context.organization_id,
            connection_id=context.connection_id,
            idempotency_key=key,
            kind=context.route.channel.value,
            entity_type=context.route.entity_type,
            entity_id=context.route.entity_id,
            payload=context.route.plan(text, msgid=msgid),
            status=DeliveryStatus.PENDING.value,
        ),
    )


def _agent_message(context: ReplyContext, text: str) -> Message:
    return Message(
        organization_id=context.organization_id,
        conversation_id=context.conversation_id,
        role="assistant",
        content=text,
        agent_version_id=context.agent.published_version_id,
    )


def _assistant_message(context: ReplyContext, text: str, usage: TurnUsage) -> Message:
    message = _agent_message(context, text)
    message.model = usage.model
    message.tokens_in = usage.tokens_in
    message.tokens_out = usage.tokens_out
    message.cost_usd = usage.cost_usd
    message.latency_ms = usage.latency_ms
    return message


async def _send(services: Services, context: ReplyContext, delivery: CrmDelivery) -> SentReply:
    # A token valid now, the account's rate limit, one refresh and retry on a 401.
    return await call_kommo_with(
        services,
        context.connection_id,
        lambda kommo: _send_with(services, context, delivery, kommo),
    )


async def _send_with(
    services: Services, context: ReplyContext, delivery: CrmDelivery, kommo: KommoAccess
) -> SentReply:
    sender = reply_sender(delivery.kind, context.connection, services.http, services.secrets, kommo)
    may_have_been_sent = delivery.attempts > 0
    if may_have_been_sent:
        # An earlier attempt may have reached Kommo before its worker died: look before sending.
        found = await sender.find_sent(delivery)
        if found is not None:
            return found
    async with transaction(services.sessions) as session:
        await crm.count_delivery_attempt(session, delivery.id)
    return await sender.send(delivery, may_have_been_sent=may_have_been_sent)


def _continuation(payload: dict[str, Any]) -> SalesbotContinuation | None:
    """The Salesbot waiting for this answer, when the event is its widget_request."""
    salesbot = payload.get("salesbot")
    if not isinstance(salesbot, dict):
        return None
    return SalesbotContinuation(bot_id=salesbot["bot_id"], continue_id=salesbot["continue_id"])
