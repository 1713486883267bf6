"""Replies as common notes on the lead or contact: a draft a manager may send on."""

from __future__ import annotations

from typing import cast

import structlog

from agent_platform.crm.kommo.client import EntityType, KommoClient
from agent_platform.crm.kommo.delivery.base import SentReply
from agent_platform.crm.models import CrmDelivery

log = structlog.get_logger("kommo.delivery.notes")

# Kommo stamps notes with its clock, the delivery row has ours: allow them to differ a little.
CLOCK_SKEW_SECONDS = 5


class NoteSender:
    def __init__(self, client: KommoClient) -> None:
        self._client = client

    def __repr__(self) -> str:
        return f"NoteSender({self._client!r})"

    async def find_sent(self, delivery: CrmDelivery) -> SentReply | None:
        # Notes carry no idempotency key of ours, but Kommo lists them: the same text on the
        # same entity, created after this delivery was planned, is the earlier attempt's note.
        # An older note with the same words (a repeated "Thank you!") is a different reply.
        planned_at = int(delivery.created_at.timestamp()) - CLOCK_SKEW_SECONDS
        for note in await self._client.list_notes(_entity_type(delivery), delivery.entity_id):
            if note.text == delivery.payload["text"] and note.created_at >= planned_at:
                log.info("reply_already_delivered", note_id=note.id)
                return SentReply(external_id=note.id)
        return None

    async def send(self, delivery: CrmDelivery, *, may_have_been_sent: bool) -> SentReply:
        note_id = await self._client.add_note(
            _entity_type(delivery), delivery.entity_id, delivery.payload["text"]
        )
        return SentReply(external_id=note_id)


def _entity_type(delivery: CrmDelivery) -> EntityType:
    # Replies are planned only for messages on a lead or a contact.
    return cast(EntityType, delivery.entity_type)
