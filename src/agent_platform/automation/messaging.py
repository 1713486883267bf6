"""An automation's message to a lead: written where the agent's replies go, exactly once.

The lead's conversation gives the way (agent.follow_up.reply_context_for: the connection's
reply channel, as an answer to the customer's newest message). The text is stored in the
conversation as the agent's message together with its delivery under the caller's key, then
sent as every reply is (agent.service.deliver): a retried job finds the delivery and never
writes twice. A lead who never wrote has no chat to write to; on a connection that answers
with notes, the text becomes a note on the lead (CrmPort.add_note, under the same key).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.manager_messages import OWN_MSGID_PREFIX
from agent_platform.agent.reply_context import ReplyContext
from agent_platform.agent.turn import TurnUsage
from agent_platform.conversation import queries
from agent_platform.conversation.models import Conversation
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.port import KommoPort
from agent_platform.crm.models import ConnectionStatus, DeliveryStatus, ReplyChannel
from agent_platform.db.session import transaction
from agent_platform.services import Services

NO_CHAT = "the lead has not written yet: no chat to write to"


class MessageRefusedError(Exception):
    """The message has no way to the lead; the text says why."""


async def lead_conversation(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID, lead_id: int
) -> Conversation | None:
    """The lead's conversation on the connection, locked until the transaction ends, as the
    reply flow locks it (conversation.repository.conversation_of)."""
    result = await session.scalars(
        select(Conversation)
        .where(
            Conversation.organization_id == organization_id,
            Conversation.connection_id == connection_id,
            Conversation.entity_type == "leads",
            Conversation.entity_id == lead_id,
        )
        .with_for_update()
    )
    return result.one_or_none()


async def send_to_lead(
    services: Services,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    text: str,
    key: str,
) -> str:
    """Send `text` to the lead once per `key`: the channel it went by (crm.models.ReplyChannel's
    value). MessageRefusedError when there is no way."""
    # Imported here: agent.service reaches crm.records, whose hook imports automation's
    # dispatch, which performs actions through this module.
    from agent_platform.agent.follow_up import CannotWriteError, reply_context_for
    from agent_platform.agent.service import deliver, store_reply

    async with transaction(services.sessions) as session:
        stored = await crm.delivery_by_key(session, key)
        if stored is not None and stored.status == DeliveryStatus.SENT.value:
            return stored.kind
        connection = await crm.connection_of(session, organization_id, connection_id)
        if connection is None or connection.status != ConnectionStatus.ACTIVE.value:
            raise MessageRefusedError("the Kommo connection is not active")
        answers_with_notes = connection.reply_channel == ReplyChannel.NOTE.value
        conversation = await lead_conversation(session, organization_id, connection_id, lead_id)
        context: ReplyContext | None = None
        reason = NO_CHAT
        if conversation is not None:
            messages = await queries.messages_of(session, conversation)
            try:
                context = await reply_context_for(session, services, conversation, messages)
            except CannotWriteError as exc:
                reason = str(exc)
        if context is not None and stored is None:
            stored = await store_reply(
                session, context, text, TurnUsage(), key=key, msgid=_msgid(key)
            )
    if context is not None and stored is not None:
        await deliver(services, context, stored)
        return stored.kind
    # A note needs no chat, nor the agent; a note an earlier attempt stored is finished here.
    if answers_with_notes and (stored is None or stored.kind == ReplyChannel.NOTE.value):
        await KommoPort(services, organization_id, connection_id).add_note(lead_id, text, key=key)
        return ReplyChannel.NOTE.value
    raise MessageRefusedError(f"cannot write to lead {lead_id}: {reason}")


def _msgid(key: str) -> str:
    """The message's id in Kommo's Chats: ours (agent.manager_messages), one per key."""
    return OWN_MSGID_PREFIX + key.replace(":", "-")
