"""The queries of the conversations and logs pages that the domains do not offer (yet).

Every query names the organization, and runs under its row-level security besides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.models import Agent
from agent_platform.conversation.models import Conversation, Message
from agent_platform.kit.pagination import PageRequest, RowsPage, newest_first
from agent_platform.web.conversation_pages.states import AgentState, state_condition


@dataclass(frozen=True)
class ConversationQuery:
    """Which conversations the list shows; None means any."""

    state: AgentState | None = None
    channel: str | None = None
    lead_id: int | None = None


async def conversations(
    session: AsyncSession, organization_id: uuid.UUID, query: ConversationQuery, page: PageRequest
) -> RowsPage[Conversation]:
    statement = select(Conversation).where(Conversation.organization_id == organization_id)
    if query.state is not None:
        statement = statement.where(state_condition(query.state))
    if query.channel is not None:
        statement = statement.where(Conversation.channel == query.channel)
    if query.lead_id is not None:
        statement = statement.where(
            Conversation.entity_type == "leads", Conversation.entity_id == query.lead_id
        )
    rows = await session.scalars(
        newest_first(statement, Conversation.created_at, Conversation.id, page)
    )
    return page.cut(list(rows))


async def agent_names(session: AsyncSession, organization_id: uuid.UUID) -> dict[uuid.UUID, str]:
    rows = await session.execute(
        select(Agent.id, Agent.name).where(Agent.organization_id == organization_id)
    )
    return dict(rows.all())


@dataclass(frozen=True)
class Usage:
    messages: int
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


async def conversation_usage(session: AsyncSession, conversation: Conversation) -> Usage:
    """The tokens and cost of every message of the conversation, not only those shown."""
    row = (
        await session.execute(
            select(
                func.count(),
                func.sum(Message.tokens_in),
                func.sum(Message.tokens_out),
                func.sum(Message.cost_usd),
            ).where(
                Message.conversation_id == conversation.id,
                Message.organization_id == conversation.organization_id,
            )
        )
    ).one()
    # A sum over no values (no messages, or none with usage) is NULL.
    return Usage(int(row[0]), int(row[1] or 0), int(row[2] or 0), Decimal(row[3] or 0))
