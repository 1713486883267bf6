"""`/api/v1/conversations/{id}/pause` and `/resume`: a person silences the agent in one
conversation, or lets it answer again (ending a handoff, a manager's takeover or a stop).

A pause is a handoff made by a person: it lasts as the agent's handoff settings say
(`handoff.pause_minutes`, or until resumed), and the reply gate treats it as one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from agent_platform.activity.repository import record_activity
from agent_platform.conversation import repository as conversations
from agent_platform.conversation.models import Conversation
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import NotFoundError
from agent_platform.organization.auth import CurrentPrincipal, Principal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/conversations", tags=["conversations"])

PAUSED_BY_API = "paused through the API"

# The agent may answer again: every reason it stayed silent is cleared.
RESUMED_STATE: Mapping[str, object] = {
    "handed_off_at": None,
    "handoff_reason": None,
    "agent_paused_until": None,
    "last_manager_message_at": None,
    "stopped_at": None,
    "stop_reason": None,
}


def paused_state(now: datetime, reason: str) -> dict[str, object]:
    """The agent silenced in the conversation from `now`, as a handoff made by a person."""
    return {"handed_off_at": now, "handoff_reason": reason}


class ConversationControlOut(BaseModel):
    id: uuid.UUID
    handed_off_at: datetime | None
    handoff_reason: str | None
    last_manager_message_at: datetime | None
    stopped_at: datetime | None
    stop_reason: str | None

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationControlOut:
        return cls.model_validate(conversation, from_attributes=True)


@router.post("/{conversation_id}/pause", summary="Silence the agent in this conversation")
async def pause(
    request: Request, principal: CurrentPrincipal, conversation_id: uuid.UUID
) -> ConversationControlOut:
    state = paused_state(datetime.now(UTC), PAUSED_BY_API)
    return await _change(request, principal, conversation_id, "conversation.paused", **state)


@router.post("/{conversation_id}/resume", summary="Let the agent answer in this conversation")
async def resume(
    request: Request, principal: CurrentPrincipal, conversation_id: uuid.UUID
) -> ConversationControlOut:
    return await _change(
        request, principal, conversation_id, "conversation.resumed", **RESUMED_STATE
    )


async def _change(
    request: Request, principal: Principal, conversation_id: uuid.UUID, action: str, **state: object
) -> ConversationControlOut:
    services: Services = request.app.state.services
    changed = await change_conversation_state(services, principal, conversation_id, action, state)
    return ConversationControlOut.of(changed)


async def change_conversation_state(
    services: Services,
    principal: Principal,
    conversation_id: uuid.UUID,
    action: str,
    state: Mapping[str, object],
) -> Conversation:
    """Set the agent's state in the conversation (paused_state, RESUMED_STATE …) and record who
    did it; the API's pause and resume and the dashboard's take over and resume alike."""
    async with tenant_transaction(services.sessions, principal.organization_id) as session:
        # Locked: the reply job deciding on this conversation waits, and sees the change.
        conversation = await conversations.conversation_of(
            session, principal.organization_id, conversation_id
        )
        if conversation is None:
            raise NotFoundError("Your organization has no conversation with this id.")
        await conversations.set_conversation_state(session, conversation.id, **state)
        await record_activity(
            session,
            organization_id=principal.organization_id,
            actor_type=principal.actor_type,
            actor_id=str(principal.actor_id),
            action=action,
            entity_type="conversation",
            entity_id=str(conversation.id),
        )
        await session.refresh(conversation)
        return conversation
