"""Leads, contacts and companies: list (filter, query, order, `with`), get, add, update.

Endpoints (Kommo API v4): `GET/POST/PATCH /api/v4/leads`, `GET/PATCH /api/v4/leads/{id}`,
`POST /api/v4/leads/complex`, the same for `/contacts`, and `GET /api/v4/companies[/{id}]`
plus `POST /api/v4/companies` (companies are mostly read; complex leads create them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from agent_platform.crm.kommo.api.transport import (
    MAX_PAGE_SIZE,
    KommoTransport,
    bare_list,
    expecting_kommo_shape,
    list_params,
    rows_in,
)
from agent_platform.crm.kommo.models import (
    AddedRecord,
    Company,
    CompanyInput,
    ComplexLeadInput,
    ComplexLeadResult,
    Contact,
    ContactFilter,
    ContactInput,
    ContactUpdate,
    Lead,
    LeadFilter,
    LeadInput,
    LeadUpdate,
    OrderDirection,
)


class LeadsApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        *,
        filter: LeadFilter | None = None,
        query: str | None = None,
        order: tuple[str, OrderDirection] | None = None,
        with_: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Lead]:
        """Every lead matching, page after page. `order` is e.g. ("created_at", "desc");
        `with_` adds related data, e.g. ("contacts",) fills `lead.contacts`."""
        params = list_params(
            filter=filter.to_kommo() if filter else None, query=query, order=order, with_=with_
        )
        async for row in self._t.pages(
            "/api/v4/leads", "leads", params=params, page_size=page_size
        ):
            yield Lead.model_validate(row)

    async def get(self, lead_id: int, *, with_: Sequence[str] = ()) -> Lead:
        params = list_params(with_=with_)
        body = await self._t.get_object(
            f"/api/v4/leads/{lead_id}", params=params, missing=f"lead {lead_id} not found"
        )
        return Lead.model_validate(body)

    async def add(self, leads: Sequence[LeadInput]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "POST", "/api/v4/leads", [lead.to_kommo() for lead in leads], rows_in("leads")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def add_complex(self, leads: Sequence[ComplexLeadInput]) -> list[ComplexLeadResult]:
        """Add leads each with a new contact and/or company, in batches of at most 50."""
        rows = await self._t.write_batched(
            "POST", "/api/v4/leads/complex", [lead.to_kommo() for lead in leads], bare_list
        )
        return [ComplexLeadResult.model_validate(row) for row in rows]

    async def update(self, changes: Sequence[LeadUpdate]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "PATCH", "/api/v4/leads", [change.to_kommo() for change in changes], rows_in("leads")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def update_one(self, change: LeadUpdate) -> AddedRecord:
        body = change.to_kommo()
        lead_id = body.pop("id")
        response = await self._t.request("PATCH", f"/api/v4/leads/{lead_id}", json=body)
        with expecting_kommo_shape(response):
            return AddedRecord.model_validate(response.json())

    async def move(
        self, lead_id: int, status_id: int, *, pipeline_id: int | None = None
    ) -> AddedRecord:
        """Move a lead to a stage (WON_STATUS_ID / LOST_STATUS_ID close it)."""
        if pipeline_id is None:
            return await self.update_one(LeadUpdate(id=lead_id, status_id=status_id))
        return await self.update_one(
            LeadUpdate(id=lead_id, status_id=status_id, pipeline_id=pipeline_id)
        )


class ContactsApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        *,
        filter: ContactFilter | None = None,
        query: str | None = None,
        order: tuple[str, OrderDirection] | None = None,
        with_: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Contact]:
        """Every contact matching; `query` also finds a contact by its phone or e-mail."""
        params = list_params(
            filter=filter.to_kommo() if filter else None, query=query, order=order, with_=with_
        )
        async for row in self._t.pages(
            "/api/v4/contacts", "contacts", params=params, page_size=page_size
        ):
            yield Contact.model_validate(row)

    async def get(self, contact_id: int, *, with_: Sequence[str] = ()) -> Contact:
        body = await self._t.get_object(
            f"/api/v4/contacts/{contact_id}",
            params=list_params(with_=with_),
            missing=f"contact {contact_id} not found",
        )
        return Contact.model_validate(body)

    async def add(self, contacts: Sequence[ContactInput]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "POST", "/api/v4/contacts", [c.to_kommo() for c in contacts], rows_in("contacts")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def update(self, changes: Sequence[ContactUpdate]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "PATCH", "/api/v4/contacts", [c.to_kommo() for c in changes], rows_in("contacts")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def update_one(self, change: ContactUpdate) -> AddedRecord:
        body = change.to_kommo()
        contact_id = body.pop("id")
        response = await self._t.request("PATCH", f"/api/v4/contacts/{contact_id}", json=body)
        with expecting_kommo_shape(response):
            return AddedRecord.model_validate(response.json())


class CompaniesApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        *,
        query: str | None = None,
        ids: Sequence[int] = (),
        order: tuple[str, OrderDirection] | None = None,
        with_: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Company]:
        params = list_params(
            filter={"id": list(ids)} if ids else None, query=query, order=order, with_=with_
        )
        async for row in self._t.pages(
            "/api/v4/companies", "companies", params=params, page_size=page_size
        ):
            yield Company.model_validate(row)

    async def get(self, company_id: int, *, with_: Sequence[str] = ()) -> Company:
        body = await self._t.get_object(
            f"/api/v4/companies/{company_id}",
            params=list_params(with_=with_),
            missing=f"company {company_id} not found",
        )
        return Company.model_validate(body)

    async def add(self, companies: Sequence[CompanyInput]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "POST", "/api/v4/companies", [c.to_kommo() for c in companies], rows_in("companies")
        )
        return [AddedRecord.model_validate(row) for row in rows]
