"""Every query on conversations and messages."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import CrmConnection, InboxEvent, InboxStatus


async def conversation_for(
    session: AsyncSession, connection: CrmConnection, message: IncomingMessage
) -> Conversation:
    """The conversation of this lead on this connection, created on its first message."""
    statement = (
        insert(Conversation)
        .values(
            id=uuid.uuid4(),
            organization_id=connection.organization_id,
            connection_id=connection.id,
            agent_id=connection.agent_id,
            entity_type=message.entity_type,
            entity_id=message.entity_id,
            talk_id=message.talk_id,
            chat_id=message.chat_id,
            contact_id=message.contact_id,
        )
        .on_conflict_do_update(
            constraint="uq_conversations_entity",
            set_={"last_message_at": func.now()},
        )
        .returning(Conversation)
    )
    return (await session.scalars(statement)).one()


async def add_message(session: AsyncSession, message: Message) -> Message:
    session.add(message)
    await session.flush()
    await session.execute(
        update(Conversation)
        .where(Conversation.id == message.conversation_id)
        .values(last_message_at=func.now())
    )
    return message


async def conversation_of(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    """The organization's conversation, locked until the transaction ends: a change to its
    state waits for the reply job deciding on it, and the reverse."""
    result = await session.scalars(
        select(Conversation)
        .where(Conversation.id == conversation_id, Conversation.organization_id == organization_id)
        .with_for_update()
    )
    return result.one_or_none()


async def set_conversation_state(
    session: AsyncSession, conversation_id: uuid.UUID, **values: object
) -> None:
    """Write the reply gate's memory of the conversation (stopped, handed off, paused …)."""
    await session.execute(
        update(Conversation).where(Conversation.id == conversation_id).values(**values)
    )


async def pending_customer_events(
    session: AsyncSession, conversation: Conversation
) -> list[InboxEvent]:
    """The customer's messages in this conversation that no reply has covered yet, oldest
    first, whether or not their own job has run."""
    message = InboxEvent.payload["message"]
    result = await session.scalars(
        select(InboxEvent)
        .where(
            InboxEvent.connection_id == conversation.connection_id,
            InboxEvent.status == InboxStatus.PENDING.value,
            message["direction"].astext == "incoming",
            message["entity_type"].astext == conversation.entity_type,
            message["entity_id"].astext == str(conversation.entity_id),
        )
        .order_by(InboxEvent.received_at, InboxEvent.id)
    )
    return list(result.all())


async def record_customer_message(
    session: AsyncSession, conversation: Conversation, event: InboxEvent, content: str
) -> None:
    """The event's message in the conversation, once however many jobs record it.

    Dated when it was received, not when recorded: a burst recorded by one job keeps its order.
    """
    await session.execute(
        insert(Message)
        .values(
            id=uuid.uuid4(),
            organization_id=conversation.organization_id,
            conversation_id=conversation.id,
            inbox_event_id=event.id,
            role="user",
            content=content,
            external_id=event.payload["message"]["message_id"],
            created_at=event.received_at,
        )
        .on_conflict_do_nothing(
            index_elements=["inbox_event_id"], index_where=text("role = 'user'")
        )
    )


async def count_messages(
    session: AsyncSession, conversation_id: uuid.UUID, role: str, since: datetime | None = None
) -> int:
    statement = select(func.count()).where(
        Message.conversation_id == conversation_id, Message.role == role
    )
    if since is not None:
        statement = statement.where(Message.created_at >= since)
    return int(await session.scalar(statement) or 0)


async def agent_wrote(
    session: AsyncSession, conversation_id: uuid.UUID, content: str, since: datetime
) -> bool:
    """Whether the agent wrote exactly this in the conversation since `since`."""
    found = await session.scalar(
        select(Message.id)
        .where(
            Message.conversation_id == conversation_id,
            Message.role == "assistant",
            Message.content == content,
            Message.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


async def count_reply_error(session: AsyncSession, conversation_id: uuid.UUID) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(consecutive_errors=Conversation.consecutive_errors + 1)
    )


async def note_manager_message(
    session: AsyncSession, conversation_id: uuid.UUID, written_at: datetime
) -> None:
    """Remember the manager's latest message; jobs may run out of order, so never go back."""
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(
            last_manager_message_at=func.greatest(
                func.coalesce(Conversation.last_manager_message_at, written_at), written_at
            )
        )
    )
