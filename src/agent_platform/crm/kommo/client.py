"""The async client for Kommo API v4 (amoCRM's API: the same paths on `*.amocrm.ru`).

    kommo = KommoClient(base_url, access_token, http, before_request=limiter.wait)
    async for lead in kommo.leads.iterate(filter=LeadFilter(pipeline_ids=[7]), with_=["contacts"]):
        ...
    await kommo.notes.add("leads", [NoteInput.common(lead.id, "Called back")])
    await kommo.leads.move(lead.id, WON_STATUS_ID)

It owns no connection pool: the caller passes the shared `httpx.AsyncClient`, so timeouts,
limits and connection reuse are decided once for the whole process. One client serves one
account (base URL and token); building one is cheap, so a new token means a new client.

Resources: `account`, `leads`, `contacts`, `companies`, `notes`, `tasks`, `calls`, `events`,
`pipelines`, `users`, `custom_fields`, `tags`, `webhooks` (see `crm/kommo/api/`). Lists are
async iterators that page by `_links.next` (at most 250 a page); writes go in batches of at
most 50, halved on 504. Every failure is a `KommoError` subclass (crm/kommo/errors.py); the
access token never appears in an exception, a repr or a log line.

`before_request` is awaited before each HTTP request: the rate limiter's hook.
"""

from __future__ import annotations

import httpx

from agent_platform.crm.kommo.api.account import (
    AccountApi,
    CustomFieldsApi,
    PipelinesApi,
    TagsApi,
    UsersApi,
    WebhooksApi,
)
from agent_platform.crm.kommo.api.activity import CallsApi, EventsApi, NotesApi, TasksApi
from agent_platform.crm.kommo.api.entities import CompaniesApi, ContactsApi, LeadsApi
from agent_platform.crm.kommo.api.transport import BeforeRequest, KommoTransport
from agent_platform.crm.kommo.errors import KommoError
from agent_platform.crm.kommo.models import EntityType, Lead, Note, NoteInput

__all__ = ["BeforeRequest", "EntityType", "KommoClient", "KommoNote"]

# The name the reply path has always used for a note it read back.
KommoNote = Note


class KommoClient:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        http: httpx.AsyncClient,
        *,
        before_request: BeforeRequest | None = None,
    ) -> None:
        transport = KommoTransport(base_url, access_token, http, before_request=before_request)
        self._transport = transport
        self.account = AccountApi(transport)
        self.leads = LeadsApi(transport)
        self.contacts = ContactsApi(transport)
        self.companies = CompaniesApi(transport)
        self.notes = NotesApi(transport)
        self.tasks = TasksApi(transport)
        self.calls = CallsApi(transport)
        self.events = EventsApi(transport)
        self.pipelines = PipelinesApi(transport)
        self.users = UsersApi(transport)
        self.custom_fields = CustomFieldsApi(transport)
        self.tags = TagsApi(transport)
        self.webhooks = WebhooksApi(transport)

    def __repr__(self) -> str:
        return f"KommoClient({self._transport.base_url!r})"

    async def add_note(self, entity_type: EntityType, entity_id: int, text: str) -> int:
        """Add a common note to a lead, contact or company and return the new note's id."""
        added = await self.notes.add(entity_type, [NoteInput.common(entity_id, text)])
        if len(added) != 1:
            raise KommoError(None, f"Kommo answered {len(added)} rows for one note")
        return added[0].id

    async def list_notes(
        self, entity_type: EntityType, entity_id: int, *, limit: int = 50
    ) -> list[Note]:
        """The entity's newest notes first, at most `limit` of them."""
        return await self.notes.latest(entity_type, entity_id, limit=limit)

    async def get_lead(self, lead_id: int) -> Lead:
        """The lead with its contacts; KommoNotFound when Kommo does not know the id."""
        return await self.leads.get(lead_id, with_=["contacts"])
