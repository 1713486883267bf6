"""A manager's messages in a lead's chat: kept in the conversation, and they pause the agent.

Kommo reports every outgoing chat message, the platform's own replies included. These are
taken for the platform's own, and kept out of the conversation:
- the message id starts with OWN_MSGID_PREFIX: the msgid our Chats API messages carry;
- the author is the connection's Chats bot (`chats_bot_id`), who sends our chat replies;
- the agent wrote the very same text in this conversation in the last ECHO_WINDOW: how a
  Salesbot's or any other channel's echo looks, whose ids we do not know.
Anything else is a person writing, and the takeover pause (agent.runtime.takeover) counts
from it.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import CrmConnection, InboxEvent, InboxStatus
from agent_platform.db.session import transaction
from agent_platform.services import Services

OWN_MSGID_PREFIX = "agent-platform-"
# Kommo reports a message within seconds; ten minutes leaves room for a queue backlog.
ECHO_WINDOW = timedelta(minutes=10)

log = structlog.get_logger("agent.manager_messages")


async def record_manager_message(services: Services, inbox_event_id: uuid.UUID) -> None:
    async with transaction(services.sessions) as session:
        event = await crm.get_inbox_event(session, inbox_event_id)
        if event is None or event.status != InboxStatus.PENDING.value:
            return
        connection = await crm.get_connection(session, event.connection_id)
        if connection is None:
            await crm.finish_inbox_event(session, event.id, InboxStatus.IGNORED, "no connection")
            return
        message = IncomingMessage(**event.payload["message"])
        conversation = await conversations.conversation_for(session, connection, message)
        if await _is_own_echo(session, connection, conversation, message, event):
            await crm.finish_inbox_event(
                session, event.id, InboxStatus.IGNORED, "the platform's own reply"
            )
            return
        await conversations.add_message(
            session,
            Message(
                organization_id=conversation.organization_id,
                conversation_id=conversation.id,
                inbox_event_id=event.id,
                role="manager",
                content=message.text,
                external_id=message.message_id,
            ),
        )
        await conversations.note_manager_message(session, conversation.id, event.received_at)
        await _tell_automation(session, services, connection, event)
        await crm.finish_inbox_event(session, event.id, InboxStatus.HANDLED)
    log.info("manager_message_recorded", lead_id=message.entity_id)


async def _is_own_echo(
    session: AsyncSession,
    connection: CrmConnection,
    conversation: Conversation,
    message: IncomingMessage,
    event: InboxEvent,
) -> bool:
    if message.message_id.startswith(OWN_MSGID_PREFIX):
        return True
    if connection.chats_bot_id is not None and message.author_id == connection.chats_bot_id:
        return True
    return await conversations.agent_wrote(
        session, conversation.id, message.text, since=event.received_at - ECHO_WINDOW
    )


async def _tell_automation(
    session: AsyncSession, services: Services, connection: CrmConnection, event: InboxEvent
) -> None:
    """A manager wrote: the message_outgoing event, for the triggers that wait for it."""
    # Imported here: automation's executor imports the agent, which imports this module.
    from agent_platform.automation import dispatch, kommo_events

    kommo_event = dispatch.kommo_event_from_payload(event.payload)
    automation_event = kommo_events.manager_message_event(
        kommo_event, connection.id, event.received_at
    )
    await dispatch.defer_if_awaited(session, services, connection.organization_id, automation_event)
