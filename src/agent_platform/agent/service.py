"""Answering a customer's message: from the inbox event to a reply in Kommo, exactly once.

The work is split in short transactions with the outside calls (LLM, Kommo) between them:
1. record the customer's message, read what the agent needs and choose the reply's way
   (a note, a chat message or the Salesbot's continue: crm.kommo.delivery);
2. generate the reply, unless an earlier attempt already stored one;
3. store the reply and its delivery (idempotency key, exact request) before sending;
4. send, after checking Kommo when an earlier attempt may already have sent it;
5. mark the delivery sent, the event handled, and log the activity.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from agent_platform.activity.repository import record_activity
from agent_platform.agent import llm
from agent_platform.agent.models import Agent, AgentStatus
from agent_platform.agent.repository import get_agent
from agent_platform.agent.runtime.prompt import Turn, build_messages, offline_reply
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Message
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.delivery import (
    ReplyConnection,
    ReplyRoute,
    SalesbotContinuation,
    SentReply,
    reply_sender,
    route_reply,
)
from agent_platform.crm.kommo.session import call_kommo_with
from agent_platform.crm.kommo.tokens import KommoAccess
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import ConnectionStatus, CrmDelivery, DeliveryStatus, InboxStatus
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("agent.reply")


@dataclass(frozen=True)
class ReplyContext:
    organization_id: uuid.UUID
    connection_id: uuid.UUID
    connection: ReplyConnection
    route: ReplyRoute
    conversation_id: uuid.UUID
    message: IncomingMessage
    agent: Agent
    history: list[Turn]


def reply_key(inbox_event_id: uuid.UUID) -> str:
    return f"reply:{inbox_event_id}"


async def answer_inbox_event(services: Services, inbox_event_id: uuid.UUID) -> None:
    context = await _record_customer_message(services, inbox_event_id)
    if context is None:
        return
    structlog.contextvars.bind_contextvars(
        organization_id=str(context.organization_id),
        agent_id=str(context.agent.id),
        lead_id=context.message.entity_id,
    )
    delivery = await _stored_delivery(services, inbox_event_id)
    if delivery is None:
        delivery = await _generate_and_store_reply(services, inbox_event_id, context)
    sent: SentReply | None = None
    if delivery.status != DeliveryStatus.SENT.value:
        sent = await _send(services, context, delivery)
    # One transaction: a crash before it commits leaves the delivery pending, and the retry
    # reconciles with Kommo before sending again.
    async with transaction(services.sessions) as session:
        if sent is not None:
            await crm.mark_delivery_sent(session, delivery.id, sent.external_id, sent.external_ref)
        await crm.finish_inbox_event(session, inbox_event_id, InboxStatus.HANDLED)
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
            },
        )
    log.info("reply_sent", delivery=delivery.idempotency_key, channel=delivery.kind)


async def _record_customer_message(
    services: Services, inbox_event_id: uuid.UUID
) -> ReplyContext | None:
    async with transaction(services.sessions) as session:
        event = await crm.get_inbox_event(session, inbox_event_id)
        if event is None or event.status != InboxStatus.PENDING.value:
            log.info("inbox_event_skipped", reason="missing or already handled")
            return None
        connection = await crm.get_connection(session, event.connection_id)
        agent = (
            await get_agent(session, connection.agent_id)
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
        message = IncomingMessage(**event.payload["message"])
        reply_connection = ReplyConnection.of(connection)
        # Before any work: a reply with no way to the customer fails the event now, saying why.
        route = route_reply(
            reply_connection, message, _continuation(event.payload), bot_name=agent.name
        )
        conversation = await conversations.conversation_for(session, connection, message)
        if await conversations.user_message_for_event(session, event.id) is None:
            await conversations.add_message(
                session,
                Message(
                    organization_id=connection.organization_id,
                    conversation_id=conversation.id,
                    inbox_event_id=event.id,
                    role="user",
                    content=message.text,
                    external_id=message.message_id,
                ),
            )
        history = [
            Turn(role=m.role, content=m.content)  # type: ignore[arg-type]
            for m in await conversations.recent_messages(session, conversation.id)
        ]
        return ReplyContext(
            organization_id=connection.organization_id,
            connection_id=connection.id,
            connection=reply_connection,
            route=route,
            conversation_id=conversation.id,
            message=message,
            agent=agent,
            history=history,
        )


async def _stored_delivery(services: Services, inbox_event_id: uuid.UUID) -> CrmDelivery | None:
    async with transaction(services.sessions) as session:
        return await crm.delivery_by_key(session, reply_key(inbox_event_id))


async def _generate_and_store_reply(
    services: Services, inbox_event_id: uuid.UUID, context: ReplyContext
) -> CrmDelivery:
    agent = context.agent
    if services.llm is not None:
        reply = await llm.complete(
            services.llm,
            model=agent.model,
            messages=build_messages(
                agent.instructions,
                {"entity_type": context.message.entity_type, "id": context.message.entity_id},
                context.history,
            ),
            temperature=float(agent.temperature),
        )
        text, model, tokens_in, tokens_out, latency_ms = (
            reply.text,
            reply.model,
            reply.tokens_in,
            reply.tokens_out,
            reply.latency_ms,
        )
    else:
        text, model, tokens_in, tokens_out, latency_ms = (
            offline_reply(context.message.text),
            None,
            None,
            None,
            None,
        )
    async with transaction(services.sessions) as session:
        await conversations.add_message(
            session,
            Message(
                organization_id=context.organization_id,
                conversation_id=context.conversation_id,
                role="assistant",
                content=text,
                model=model,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_ms=latency_ms,
            ),
        )
        return await crm.add_delivery(
            session,
            CrmDelivery(
                organization_id=context.organization_id,
                connection_id=context.connection_id,
                idempotency_key=reply_key(inbox_event_id),
                kind=context.route.channel.value,
                entity_type=context.route.entity_type,
                entity_id=context.route.entity_id,
                payload=context.route.plan(text, msgid=f"agent-platform-{inbox_event_id}"),
                status=DeliveryStatus.PENDING.value,
            ),
        )


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
