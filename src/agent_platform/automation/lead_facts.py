"""A lead's facts read from Kommo, for events that do not carry them (a message, the clock).

The shape is the one kommo_events builds from a webhook, so that conditions and snapshots
see the same values whichever source described the lead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from agent_platform.automation.kommo_events import custom_field_facts
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoNotFound
from agent_platform.crm.kommo.models import Contact, Lead
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.services import Services


@dataclass(frozen=True)
class LeadAndContact:
    lead: dict[str, Any] | None  # None: Kommo does not know the lead (deleted)
    contact: dict[str, Any] | None


def lead_facts(lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "name": lead.name,
        "price": lead.price,
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "responsible_user_id": lead.responsible_user_id,
        "tags": [tag.name for tag in lead.tags],
        "custom_fields": custom_field_facts(
            (values.field_id, values.field_code, [value.value for value in values.values])
            for values in lead.custom_fields_values or []
        ),
    }


def contact_facts(contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "phone": next(iter(contact.phones), None),
        "email": next(iter(contact.emails), None),
    }


async def read_lead_and_contact(
    services: Services, connection_id: uuid.UUID, lead_id: int
) -> LeadAndContact:
    """The lead and its main contact, as Kommo has them now (two requests at most)."""

    async def read(kommo: KommoClient) -> LeadAndContact:
        try:
            lead = await kommo.get_lead(lead_id)
        except KommoNotFound:
            return LeadAndContact(None, None)
        main = next((link for link in lead.contacts if link.is_main), None) or next(
            iter(lead.contacts), None
        )
        contact = None
        if main is not None:
            try:
                contact = contact_facts(await kommo.contacts.get(main.id))
            except KommoNotFound:
                contact = None
        return LeadAndContact(lead_facts(lead), contact)

    return await call_kommo(services, connection_id, read)
