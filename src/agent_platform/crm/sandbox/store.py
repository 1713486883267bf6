"""The sandbox's in-memory Kommo account: leads, contacts and notes.

The sandbox is for demos, development and tests, so state lives in the process and a restart
or `reset()` returns to the seeded account. Records hold data only; the Kommo JSON shape is
the HTTP layer's business.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Literal

EntityType = Literal["leads", "contacts"]

ACCOUNT_ID = 30_000_001
# The one user of the account: the owner of the access token and of every record.
USER_ID = 1_000_001

# The account's one pipeline. Like every Kommo pipeline it opens with an incoming stage and
# ends with the fixed ids 142 "Closed - won" and 143 "Closed - lost".
PIPELINE_ID = 7_000_001
INCOMING_STATUS_ID = 7_000_011
INITIAL_CONTACT_STATUS_ID = 7_000_012
STATUS_IDS = (INCOMING_STATUS_ID, INITIAL_CONTACT_STATUS_ID, 7_000_013, 7_000_014, 142, 143)

# Seeded records keep their ids across resets, so the demo page and tests can name them.
DEMO_CONTACT_ID = 1_001
DEMO_LEAD_ID = 1_002


@dataclass(frozen=True, slots=True)
class Lead:
    id: int
    name: str
    price: int
    pipeline_id: int
    status_id: int
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    entity_type: EntityType
    entity_id: int
    note_type: str
    params: dict[str, Any]
    created_at: int


@dataclass(slots=True)
class _Account:
    leads: dict[int, Lead] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    notes: dict[int, Note] = field(default_factory=dict)


class SandboxStore:
    """One Kommo account in memory.

    Every method is synchronous, so inside the sandbox's event loop each runs whole; the lock
    is only for the other threads that tests and the demo run alongside the server.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Other ids never repeat, even across resets, as in Kommo: a stale id must not reach
        # a new record.
        self._ids = itertools.count(2_000)
        self._account = _Account()
        self.created_at = int(time.time())
        self.reset()

    def reset(self) -> None:
        """Forget everything but the demo contact and the demo lead."""
        now = int(time.time())
        contact = Contact(DEMO_CONTACT_ID, "Demo Contact", "Demo", "Contact", now, now)
        lead = Lead(DEMO_LEAD_ID, "Demo lead", 0, PIPELINE_ID, INITIAL_CONTACT_STATUS_ID, now, now)
        with self._lock:
            self._account = _Account(leads={lead.id: lead}, contacts={contact.id: contact})

    def add_lead(
        self,
        *,
        name: str = "",
        price: int = 0,
        pipeline_id: int = PIPELINE_ID,
        status_id: int = INCOMING_STATUS_ID,
    ) -> Lead:
        now = int(time.time())
        with self._lock:
            lead_id = next(self._ids)
            # Kommo names an unnamed lead after its id.
            lead = Lead(
                lead_id, name or f"Lead #{lead_id}", price, pipeline_id, status_id, now, now
            )
            self._account.leads[lead.id] = lead
        return lead

    def add_contact(self, *, name: str = "", first_name: str = "", last_name: str = "") -> Contact:
        now = int(time.time())
        # Kommo shows a contact without a name by its first and last names.
        name = name or f"{first_name} {last_name}".strip()
        with self._lock:
            contact = Contact(next(self._ids), name, first_name, last_name, now, now)
            self._account.contacts[contact.id] = contact
        return contact

    def get_lead(self, lead_id: int) -> Lead | None:
        return self._account.leads.get(lead_id)

    def get_contact(self, contact_id: int) -> Contact | None:
        return self._account.contacts.get(contact_id)

    def leads(self) -> list[Lead]:
        return list(self._account.leads.values())

    def contacts(self) -> list[Contact]:
        return list(self._account.contacts.values())

    def exists(self, entity_type: EntityType, entity_id: int) -> bool:
        records = self._account.leads if entity_type == "leads" else self._account.contacts
        return entity_id in records

    def add_note(
        self, entity_type: EntityType, entity_id: int, note_type: str, params: dict[str, Any]
    ) -> Note:
        with self._lock:
            note = Note(
                next(self._ids), entity_type, entity_id, note_type, params, int(time.time())
            )
            self._account.notes[note.id] = note
        return note

    def notes(
        self, entity_type: EntityType | None = None, entity_id: int | None = None
    ) -> list[Note]:
        """Notes by ascending id (the order they were added), optionally of one entity only."""
        return [
            note
            for note in list(self._account.notes.values())
            if (entity_type is None or note.entity_type == entity_type)
            and (entity_id is None or note.entity_id == entity_id)
        ]
