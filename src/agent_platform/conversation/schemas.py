"""The chat API's and the conversations API's shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Channel = Literal["kommo", "api"]


class ChatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: uuid.UUID
    conversation_id: uuid.UUID | None = Field(
        default=None, description="Continue this conversation; none starts a new one."
    )
    message: str = Field(min_length=1, max_length=4000, description="The customer's words.")
    version: int | None = Field(
        default=None,
        ge=1,
        description="Answer with this saved version (a draft may be tried before publishing); "
        "none: the published one.",
    )
    stream: bool = Field(
        default=False, description="Server-sent events (also with Accept: text/event-stream)."
    )


class UsageOut(BaseModel):
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: Decimal | None
    latency_ms: int | None


class HandoffOut(BaseModel):
    reason: str


class ChatOut(BaseModel):
    conversation_id: uuid.UUID
    reply: str | None = Field(description="null when the agent hands the conversation over.")
    handoff: HandoffOut | None
    message_id: uuid.UUID | None = Field(description="The reply's message; null on a handoff.")
    source: Literal["faq", "knowledge", "model", "handoff"]
    version: int | None = Field(description="The agent version that answered.")
    usage: UsageOut


class ConversationOut(BaseModel):
    id: uuid.UUID
    channel: Channel
    agent_id: uuid.UUID | None
    entity_type: str
    entity_id: int
    status: str
    handed_off_at: datetime | None
    handoff_reason: str | None
    summary: str | None
    last_message_at: datetime | None
    created_at: datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    role: str
    text: str
    tool_calls: list[dict[str, Any]] | None
    tool_call_id: str | None
    model: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: Decimal | None
    latency_ms: int | None
    agent_version_id: uuid.UUID | None
    created_at: datetime


class ConversationDetail(ConversationOut):
    messages: list[MessageOut]
