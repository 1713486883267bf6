"""The chat API's rules: which agent version answers, in which conversation, and what is kept.

A chat conversation has channel "api": no CRM connection and no lead behind it, so the
agent's CRM tools are not offered there (agent/tool_calls.offered_tools). The customer's
message is stored before the turn and the reply after it, each in a short transaction of its
own: none stays open while the model thinks.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent import repository as agents
from agent_platform.agent.management import (
    AgentNotFoundError,
    answering_version,
)
from agent_platform.agent.models import AgentStatus
from agent_platform.agent.turn import TurnRequest, TurnResult, generate, turn_events
from agent_platform.conversation import queries
from agent_platform.conversation.models import Conversation, Message
from agent_platform.conversation.queries import ConversationFilter
from agent_platform.conversation.schemas import ChatIn, ChatOut, HandoffOut, UsageOut
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import NotFoundError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.organization.auth import Principal
from agent_platform.services import Services

API_CHANNEL = "api"
# Chat conversations have no CRM entity; the columns still want one.
CHAT_ENTITY_TYPE = "chat"
CHAT_ENTITY_ID = 0


class ConversationNotFoundError(NotFoundError):
    code = "conversation_not_found"

    def __init__(self, conversation_id: uuid.UUID) -> None:
        super().__init__(f"No conversation {conversation_id} in this organization.")


@dataclass(frozen=True)
class ChatTurn:
    """A chat request accepted: the customer's message is stored, the turn is to run."""

    request: TurnRequest
    version_number: int | None


async def start_chat(services: Services, principal: Principal, body: ChatIn) -> ChatTurn:
    organization_id = principal.organization_id
    async with tenant_transaction(services.sessions, organization_id) as session:
        record = await agents.agent_record(session, organization_id, body.agent_id)
        if record is None or record.agent.status == AgentStatus.ARCHIVED.value:
            raise AgentNotFoundError(body.agent_id)
        answering = await answering_version(session, record, body.version)
        conversation = await _conversation(session, organization_id, body)
        await queries.add_messages(
            session,
            [
                Message(
                    organization_id=organization_id,
                    conversation_id=conversation.id,
                    role="user",
                    content=body.message,
                )
            ],
        )
    return ChatTurn(
        TurnRequest(
            organization_id=organization_id,
            conversation_id=conversation.id,
            agent_id=body.agent_id,
            agent=answering.settings,
            version_id=answering.version_id,
            question=body.message,
        ),
        answering.number,
    )


async def answer(services: Services, turn: ChatTurn) -> ChatOut:
    return await _keep_reply(services, turn, await generate(services, turn.request))


async def answer_in_pieces(services: Services, turn: ChatTurn) -> AsyncIterator[str | ChatOut]:
    """The reply's text as the model writes it, then the whole answer, as `answer` gives it."""
    async for event in turn_events(services, turn.request, stream=True):
        if isinstance(event, TurnResult):
            yield await _keep_reply(services, turn, event)
        else:
            yield event


async def list_conversations(
    services: Services, principal: Principal, wanted: ConversationFilter, page: PageRequest
) -> RowsPage[Conversation]:
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        return await queries.conversations(session, principal.organization_id, wanted, page)


async def conversation_with_messages(
    services: Services, principal: Principal, conversation_id: uuid.UUID
) -> tuple[Conversation, list[Message]]:
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        conversation = await queries.conversation_of(
            session, principal.organization_id, conversation_id
        )
        if conversation is None:
            raise ConversationNotFoundError(conversation_id)
        return conversation, await queries.messages_of(session, conversation)


async def _conversation(
    session: AsyncSession, organization_id: uuid.UUID, body: ChatIn
) -> Conversation:
    if body.conversation_id is None:
        return await queries.add_conversation(
            session,
            Conversation(
                organization_id=organization_id,
                channel=API_CHANNEL,
                agent_id=body.agent_id,
                entity_type=CHAT_ENTITY_TYPE,
                entity_id=CHAT_ENTITY_ID,
            ),
        )
    conversation = await queries.conversation_of(session, organization_id, body.conversation_id)
    # A Kommo conversation, or another agent's, is not this chat's to continue.
    if (
        conversation is None
        or conversation.channel != API_CHANNEL
        or conversation.agent_id != body.agent_id
    ):
        raise ConversationNotFoundError(body.conversation_id)
    return conversation


async def _keep_reply(services: Services, turn: ChatTurn, result: TurnResult) -> ChatOut:
    """Store the reply (with the turn's usage and the version that answered), or the handoff."""
    request = turn.request
    message_id = None
    async with transaction(services.sessions) as session:
        if result.text is None:
            await queries.mark_handed_off(
                session, request.conversation_id, result.handoff_reason or ""
            )
        else:
            message = Message(
                organization_id=request.organization_id,
                conversation_id=request.conversation_id,
                role="assistant",
                content=result.text,
                agent_version_id=result.version_id,
                model=result.usage.model,
                tokens_in=result.usage.tokens_in,
                tokens_out=result.usage.tokens_out,
                cost_usd=result.usage.cost_usd,
                latency_ms=result.usage.latency_ms,
            )
            await queries.add_messages(session, [message])
            message_id = message.id
    usage = result.usage
    return ChatOut(
        conversation_id=request.conversation_id,
        reply=result.text,
        handoff=HandoffOut(reason=result.handoff_reason) if result.handoff_reason else None,
        message_id=message_id,
        source=result.source.value,
        version=turn.version_number,
        usage=UsageOut(
            model=usage.model,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cost_usd=usage.cost_usd,
            latency_ms=usage.latency_ms,
        ),
    )
