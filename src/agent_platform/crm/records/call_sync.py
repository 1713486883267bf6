"""Logging calls made through our API in Kommo (`POST /api/v4/calls`).

Kommo files a call by its phone number (on the contact's one open lead, else on the contact
or company) and keeps it as a `call_in`/`call_out` note carrying our `uniq`: that note is how
a retried job finds the call an earlier attempt logged. Kommo itself does not refuse a second
call with the same `uniq`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import get_args

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.delivery.notes import CLOCK_SKEW_SECONDS
from agent_platform.crm.kommo.errors import KommoError
from agent_platform.crm.kommo.models import CallInput, CallStatus, EntityType
from agent_platform.crm.models import CrmCall, SyncStatus
from agent_platform.crm.records import repository
from agent_platform.crm.records.push import push_once
from agent_platform.crm.records.repository import LoggedCall
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("crm.records.calls")

CALL_NOTE_TYPES = ("call_in", "call_out")
# Kommo answers a logged call's entity in the singular; our rows use its plural names.
_PLURAL = {"lead": "leads", "contact": "contacts", "company": "companies", "customer": "customers"}


class CallNotLoggedError(KommoError):
    """Kommo answered the batch but did not log the call (typically: nobody has the phone)."""


class NoPhoneForLeadError(KommoError):
    """The call names a lead but no phone, and the lead's contact has none to file it by."""


@dataclass(frozen=True)
class CallLog:
    """The push of one call to Kommo."""

    call: CrmCall

    @property
    def may_have_been_sent(self) -> bool:
        return self.call.push_attempts > 0

    async def find_sent(self, kommo: KommoClient) -> LoggedCall | None:
        planned_at = int(self.call.created_at.timestamp()) - CLOCK_SKEW_SECONDS
        # Calls on customers are not searched: the client reads notes of these three only.
        for entity_type in get_args(EntityType):
            newest_first = kommo.notes.iterate(
                entity_type, note_types=CALL_NOTE_TYPES, order=("id", "desc")
            )
            async for note in newest_first:
                if note.created_at < planned_at:
                    break  # the rest is older still
                if note.params.get("uniq") == self.call.uniq:
                    phone = note.params.get("phone")
                    return LoggedCall(
                        kommo_id=note.id,
                        entity_type=entity_type,
                        entity_id=note.entity_id,
                        phone=phone if isinstance(phone, str) else None,
                    )
        return None

    async def count_attempt(self, session: AsyncSession) -> None:
        await repository.count_call_attempt(session, self.call.id)

    async def send(self, kommo: KommoClient) -> LoggedCall:
        call = self.call
        phone = call.phone or await _lead_phone(kommo, call.lead_id)
        answer = await kommo.calls.add(
            [
                CallInput(
                    direction=call.direction,
                    duration=call.duration_seconds,
                    source=call.source,
                    phone=phone,
                    uniq=call.uniq,
                    link=call.link,
                    call_status=CallStatus(call.call_status) if call.call_status else None,
                    call_result=call.call_result,
                    responsible_user_id=call.responsible_user_id,
                )
            ]
        )
        if answer.errors:
            error = answer.errors[0]
            raise CallNotLoggedError(error.status, error.detail or error.title or "not logged")
        if len(answer.calls) != 1:
            raise KommoError(None, f"Kommo answered {len(answer.calls)} rows for one call")
        logged = answer.calls[0]
        return LoggedCall(
            kommo_id=logged.id,
            entity_type=_PLURAL.get(logged.entity_type, logged.entity_type),
            entity_id=logged.entity_id,
            phone=phone,
        )


async def _lead_phone(kommo: KommoClient, lead_id: int | None) -> str:
    """The first phone of the lead's main contact (else its first contact)."""
    assert lead_id is not None, "a call without a phone names its lead (see CallIn)"
    lead = await kommo.get_lead(lead_id)
    contacts = sorted(lead.contacts, key=lambda link: not link.is_main)
    for link in contacts:
        phones = (await kommo.contacts.get(link.id)).phones
        if phones:
            return phones[0]
    raise NoPhoneForLeadError(
        None, f"lead {lead_id} has no contact with a phone number to file the call by"
    )


async def push_call(services: Services, call_id: uuid.UUID) -> None:
    async with transaction(services.sessions) as session:
        call = await repository.get_call(session, call_id)
    if call is None or call.sync_status != SyncStatus.PENDING.value:
        log.info("call_push_skipped", reason="gone or already logged")
        return
    structlog.contextvars.bind_contextvars(
        organization_id=str(call.organization_id), crm_call_id=str(call.id)
    )
    if call.lead_id is not None:
        structlog.contextvars.bind_contextvars(lead_id=call.lead_id)
    logged = await push_once(services, call.connection_id, CallLog(call))
    async with transaction(services.sessions) as session:
        await repository.record_call_logged(session, call_id, logged)
    log.info("call_logged_in_kommo", kommo_id=logged.kommo_id, entity_type=logged.entity_type)
