"""Every query on conversations and messages."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import CrmConnection


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


async def user_message_for_event(
    session: AsyncSession, inbox_event_id: uuid.UUID
) -> Message | None:
    result = await session.scalars(
        select(Message).where(Message.inbox_event_id == inbox_event_id, Message.role == "user")
    )
    return result.one_or_none()


async def add_message(session: AsyncSession, message: Message) -> Message:
    session.add(message)
    await session.flush()
    await session.execute(
        update(Conversation)
        .where(Conversation.id == message.conversation_id)
        .values(last_message_at=func.now())
    )
    return message


async def recent_messages(
    session: AsyncSession, conversation_id: uuid.UUID, limit: int = 20
) -> list[Message]:
    result = await session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return list(reversed(result.all()))
