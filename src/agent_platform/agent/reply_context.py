"""What a reply job knows once it has read the event, the connection, the agent and the lead."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from agent_platform.agent.published import PublishedAgent
from agent_platform.crm.kommo.delivery import ReplyConnection, ReplyRoute
from agent_platform.crm.kommo.webhooks import IncomingMessage


@dataclass(frozen=True)
class ReplyContext:
    organization_id: uuid.UUID
    connection_id: uuid.UUID
    connection: ReplyConnection
    route: ReplyRoute
    conversation_id: uuid.UUID
    inbox_event_id: uuid.UUID
    message: IncomingMessage
    agent: PublishedAgent
    covered_event_ids: tuple[uuid.UUID, ...]
    """The pending customer messages one reply to this event answers: this one and those
    before it (a debounced burst)."""
