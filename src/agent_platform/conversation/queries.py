"""Queries on conversations and messages for the agent's turn, the chat API and the
conversations API (conversation/repository.py serves the Kommo reply flow).

Every query names the organization: a conversation of another one is not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.conversation.models import Conversation, Message
from agent_platform.kit.pagination import PageRequest, RowsPage, newest_first

# The most turns a reply is built from: older ones live on in the conversation's summary.
HISTORY_LIMIT = 200


@dataclass(frozen=True)
class ConversationFilter:
    agent_id: uuid.UUID | None = None
    channel: str | None = None
    entity_id: int | None = None
    handed_off: bool | None = None


async def conversation_of(
    session: AsyncSession, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> Conversation | None:
    return await session.scalar(
        select(Conversation).where(
            Conversation.id == conversation_id, Conversation.organization_id == organization_id
        )
    )


async def conversations(
    session: AsyncSession,
    organization_id: uuid.UUID,
    wanted: ConversationFilter,
    page: PageRequest,
) -> RowsPage[Conversation]:
    statement = select(Conversation).where(Conversation.organization_id == organization_id)
    if wanted.agent_id is not None:
        statement = statement.where(Conversation.agent_id == wanted.agent_id)
    if wanted.channel is not None:
        statement = statement.where(Conversation.channel == wanted.channel)
    if wanted.entity_id is not None:
        statement = statement.where(Conversation.entity_id == wanted.entity_id)
    if wanted.handed_off is not None:
        handed_off = Conversation.handed_off_at.is_not(None)
        statement = statement.where(handed_off if wanted.handed_off else ~handed_off)
    rows = await session.scalars(
        newest_first(statement, Conversation.created_at, Conversation.id, page)
    )
    return page.cut(list(rows))


async def messages_of(
    session: AsyncSession,
    conversation: Conversation,
    *,
    after: datetime | None = None,
    limit: int = HISTORY_LIMIT,
) -> list[Message]:
    """The conversation's newest `limit` messages (those after `after`), oldest first."""
    statement = select(Message).where(
        Message.conversation_id == conversation.id,
        Message.organization_id == conversation.organization_id,
    )
    if after is not None:
        statement = statement.where(Message.created_at > after)
    rows = await session.scalars(
        statement.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)
    )
    return list(reversed(rows.all()))


async def tool_results(
    session: AsyncSession, conversation_id: uuid.UUID, call_ids: Collection[str]
) -> dict[str, str]:
    """The recorded results of these tool calls, by call id."""
    rows = await session.execute(
        select(Message.tool_call_id, Message.content).where(
            Message.conversation_id == conversation_id,
            Message.role == "tool",
            Message.tool_call_id.in_(list(call_ids)),
        )
    )
    return {call_id: content for call_id, content in rows.all() if call_id is not None}


async def add_messages(session: AsyncSession, messages: Sequence[Message]) -> None:
    session.add_all(messages)
    await session.flush()
    conversation_ids = {message.conversation_id for message in messages}
    await session.execute(
        update(Conversation)
        .where(Conversation.id.in_(conversation_ids))
        .values(last_message_at=func.now())
    )


async def save_summary(
    session: AsyncSession, conversation_id: uuid.UUID, summary: str, until: datetime
) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(summary=summary, summarized_until=until)
    )


async def add_conversation(session: AsyncSession, conversation: Conversation) -> Conversation:
    session.add(conversation)
    await session.flush()
    return conversation


async def mark_handed_off(session: AsyncSession, conversation_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id)
        .values(handed_off_at=func.now(), handoff_reason=reason)
    )
