"""What the conversations and logs pages read, and a person taking over or resuming the agent.

Taking over is the conversations API's pause made by a signed-in person: the same state
(agent.conversation_control.paused_state and RESUMED_STATE), the same activity entry, with
the user as the actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from agent_platform.activity import repository as activity_log
from agent_platform.activity.models import ActivityLog
from agent_platform.activity.repository import ActivityQuery
from agent_platform.agent.conversation_control import (
    RESUMED_STATE,
    change_conversation_state,
    paused_state,
)
from agent_platform.conversation import queries as conversation_queries
from agent_platform.conversation.models import Conversation, Message
from agent_platform.conversation.service import ConversationNotFoundError
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.organization.permissions import Permission, require
from agent_platform.services import Services
from agent_platform.web.auth import SignedInUser
from agent_platform.web.conversation_pages import queries
from agent_platform.web.conversation_pages.queries import ConversationQuery, Usage
from agent_platform.web.conversation_pages.states import TAKEN_OVER_IN_DASHBOARD


@dataclass(frozen=True)
class ConversationList:
    page: RowsPage[Conversation]
    agent_names: dict[uuid.UUID, str]


@dataclass(frozen=True)
class ConversationRead:
    conversation: Conversation
    messages: list[Message]
    usage: Usage
    agent_name: str | None


async def list_conversations(
    services: Services, organization_id: uuid.UUID, query: ConversationQuery, page: PageRequest
) -> ConversationList:
    async with tenant_transaction(services.sessions, organization_id) as session:
        found = await queries.conversations(session, organization_id, query, page)
        return ConversationList(found, await queries.agent_names(session, organization_id))


async def read_conversation(
    services: Services, organization_id: uuid.UUID, conversation_id: uuid.UUID
) -> ConversationRead:
    async with tenant_transaction(services.sessions, organization_id) as session:
        conversation = await conversation_queries.conversation_of(
            session, organization_id, conversation_id
        )
        if conversation is None:
            raise ConversationNotFoundError(conversation_id)
        names = await queries.agent_names(session, organization_id)
        return ConversationRead(
            conversation=conversation,
            messages=await conversation_queries.messages_of(session, conversation),
            usage=await queries.conversation_usage(session, conversation),
            agent_name=names.get(conversation.agent_id) if conversation.agent_id else None,
        )


async def take_over(services: Services, user: SignedInUser, conversation_id: uuid.UUID) -> None:
    """Silence the agent in the conversation until someone resumes it."""
    state = paused_state(datetime.now(UTC), TAKEN_OVER_IN_DASHBOARD)
    await _change(services, user, conversation_id, "conversation.paused", state)


async def resume(services: Services, user: SignedInUser, conversation_id: uuid.UUID) -> None:
    """Let the agent answer again: handoff, pause, manager's takeover and stop all end."""
    await _change(services, user, conversation_id, "conversation.resumed", RESUMED_STATE)


async def _change(
    services: Services,
    user: SignedInUser,
    conversation_id: uuid.UUID,
    action: str,
    state: Mapping[str, object],
) -> None:
    require(user.role, Permission.TAKE_OVER_CONVERSATIONS)
    await change_conversation_state(services, user.as_principal(), conversation_id, action, state)


async def list_activity(
    services: Services, organization_id: uuid.UUID, query: ActivityQuery, page: PageRequest
) -> RowsPage[ActivityLog]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return await activity_log.list_activity(session, organization_id, query, page)
