"""The throw-away conversations an evaluation runs in.

Each case gets a chat-API ('api' channel) conversation, deleted with its messages once the
case ends: evaluations leave lists, reports and histories as they were. Deleting rather than
flagging keeps every existing query correct without a filter to remember; the model calls'
usage rows stay (their conversation set to null), since the money was spent all the same.
A process killed mid-case leaves its conversation behind, recognisable by its entity type.
"""

from __future__ import annotations

import uuid

from sqlalchemy import delete

from agent_platform.conversation import queries
from agent_platform.conversation.models import Conversation, Message
from agent_platform.conversation.service import API_CHANNEL, CHAT_ENTITY_ID
from agent_platform.db.session import tenant_transaction
from agent_platform.services import Services

EVALUATION_ENTITY_TYPE = "evaluation"


async def open_conversation(
    services: Services, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> uuid.UUID:
    async with tenant_transaction(services.sessions, organization_id) as session:
        conversation = await queries.add_conversation(
            session,
            Conversation(
                organization_id=organization_id,
                channel=API_CHANNEL,
                agent_id=agent_id,
                entity_type=EVALUATION_ENTITY_TYPE,
                entity_id=CHAT_ENTITY_ID,
            ),
        )
        return conversation.id


async def add_message(
    services: Services,
    organization_id: uuid.UUID,
    conversation_id: uuid.UUID,
    role: str,
    text: str,
) -> None:
    """The history the next turn reads: the customer's message, or what the agent said."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        await queries.add_messages(
            session,
            [
                Message(
                    organization_id=organization_id,
                    conversation_id=conversation_id,
                    role=role,
                    content=text,
                )
            ],
        )


async def discard_conversation(
    services: Services, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> None:
    """Delete it; its messages go with it (ON DELETE CASCADE)."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        await session.execute(
            delete(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.organization_id == organization_id,
            )
        )
