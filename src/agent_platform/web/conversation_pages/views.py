"""Rows as the conversations and logs pages show them: times, roles, tool calls, costs.

Values stay text here; the templates escape them (autoescape), so a customer's markup is
shown, never run.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from agent_platform.conversation.models import Conversation, Message
from agent_platform.web.conversation_pages.states import AgentState, state_of

# The stored message roles, as a reader calls who wrote.
ROLE_NAMES = {
    "user": "customer",
    "assistant": "agent",
    "manager": "manager",
    "tool": "tool",
    "system": "system",
}


def moment(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def dollars(value: Decimal | None) -> str:
    return "" if value is None else f"${value:.6f}"


def page_link(path: str, filters: Mapping[str, str], **extra: str) -> str:
    """`path` with the non-empty filters (and `extra`) as its query string."""
    chosen = {name: value for name, value in {**filters, **extra}.items() if value}
    return f"{path}?{urlencode(chosen)}" if chosen else path


# Kommo's entity types, each with its name on the pages (conversations.entity_<type>).
ENTITY_TYPES = frozenset({"leads", "contacts", "companies", "customers"})


@dataclass(frozen=True)
class Entity:
    """Who the conversation is with: a Kommo lead (or contact …), or None for a chat."""

    type: str
    id: int


@dataclass(frozen=True)
class ConversationRow:
    id: uuid.UUID
    entity: Entity | None
    channel: str
    agent: str | None
    last_message_at: str
    state: AgentState


def conversation_row(
    conversation: Conversation, agent_names: Mapping[uuid.UUID, str], now: datetime
) -> ConversationRow:
    return ConversationRow(
        id=conversation.id,
        entity=entity_of(conversation),
        channel=conversation.channel,
        agent=agent_names.get(conversation.agent_id) if conversation.agent_id else None,
        last_message_at=moment(conversation.last_message_at or conversation.created_at),
        state=state_of(conversation, now),
    )


def entity_of(conversation: Conversation) -> Entity | None:
    if conversation.channel != "kommo" or conversation.entity_type not in ENTITY_TYPES:
        return None
    return Entity(conversation.entity_type, conversation.entity_id)


@dataclass(frozen=True)
class ToolCallView:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class MessageView:
    role: str
    text: str
    tool_calls: list[ToolCallView]
    answers_call: str | None
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost: str
    created_at: str


def in_call_order(messages: Sequence[Message]) -> list[Message]:
    """The messages oldest first, each tool result right after the call it answers.

    A reply and its tool results are stored in one transaction and share its time, so their
    stored order alone cannot tell which came first.
    """
    called = {call.get("id") for message in messages for call in message.tool_calls or []}
    # Results whose call is shown go right after it; any other keeps its own place.
    answers = {
        message.tool_call_id: message
        for message in messages
        if message.role == "tool" and message.tool_call_id in called
    }
    moved = set(answers)
    ordered: list[Message] = []
    for message in messages:
        if message.role == "tool" and message.tool_call_id in moved:
            continue
        ordered.append(message)
        for call in message.tool_calls or []:
            answer = answers.pop(call.get("id"), None)
            if answer is not None:
                ordered.append(answer)
    return ordered


def message_view(message: Message) -> MessageView:
    return MessageView(
        role=ROLE_NAMES.get(message.role, message.role),
        text=message.content,
        tool_calls=[tool_call_view(call) for call in message.tool_calls or []],
        answers_call=message.tool_call_id,
        model=message.model,
        tokens_in=message.tokens_in,
        tokens_out=message.tokens_out,
        cost=dollars(message.cost_usd),
        created_at=moment(message.created_at),
    )


def tool_call_view(call: Mapping[str, Any]) -> ToolCallView:
    """An OpenAI-shaped function call: its name and its arguments, pretty when JSON."""
    function = call.get("function")
    function = function if isinstance(function, Mapping) else {}
    arguments = function.get("arguments", "")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return ToolCallView(str(call.get("id", "")), str(function.get("name", "")), arguments)
    return ToolCallView(
        id=str(call.get("id", "")),
        name=str(function.get("name", "")),
        arguments=json.dumps(arguments, ensure_ascii=False, indent=2, sort_keys=True),
    )
