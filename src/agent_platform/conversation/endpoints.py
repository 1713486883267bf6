"""GET /api/v1/conversations and /api/v1/conversations/{id}: what the agents said, and why
it cost what it cost."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from agent_platform.conversation import service
from agent_platform.conversation.models import Conversation, Message
from agent_platform.conversation.queries import ConversationFilter
from agent_platform.conversation.schemas import (
    Channel,
    ConversationDetail,
    ConversationOut,
    MessageOut,
)
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut.model_validate(conversation, from_attributes=True)


def _message_out(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        role=message.role,
        text=message.content,
        tool_calls=message.tool_calls,
        tool_call_id=message.tool_call_id,
        model=message.model,
        tokens_in=message.tokens_in,
        tokens_out=message.tokens_out,
        cost_usd=message.cost_usd,
        latency_ms=message.latency_ms,
        agent_version_id=message.agent_version_id,
        created_at=message.created_at,
    )


@router.get("", summary="This organization's conversations, newest first")
async def list_conversations(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: uuid.UUID | None = None,
    channel: Channel | None = None,
    lead: Annotated[int | None, Query(ge=1, description="The Kommo lead's id.")] = None,
    handed_off: bool | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[ConversationOut]:
    wanted = ConversationFilter(
        agent_id=agent_id, channel=channel, entity_id=lead, handed_off=handed_off
    )
    found = await service.list_conversations(
        _services(request), principal, wanted, PageRequest.parse(limit, cursor)
    )
    return Page[ConversationOut](
        items=[_conversation_out(c) for c in found.items], next_cursor=found.next_cursor
    )


@router.get("/{conversation_id}", summary="A conversation with its messages, oldest first")
async def get_conversation(
    request: Request, principal: CurrentPrincipal, conversation_id: uuid.UUID
) -> ConversationDetail:
    conversation, messages = await service.conversation_with_messages(
        _services(request), principal, conversation_id
    )
    return ConversationDetail(
        **_conversation_out(conversation).model_dump(),
        messages=[_message_out(message) for message in messages],
    )
