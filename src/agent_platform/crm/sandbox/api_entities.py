"""Sandbox routes for leads, contacts and companies, as Kommo API v4 answers them.

`GET /api/v4/leads` (filter, query, order, with=contacts, page, limit), `GET /api/v4/leads/{id}`,
`POST /api/v4/leads`, `PATCH /api/v4/leads`, `PATCH /api/v4/leads/{id}`,
`POST /api/v4/leads/complex`; the same for `/contacts` (with=leads); companies: list, get, add.
Lead filters implemented: `filter[id]`, `filter[name]`, `filter[pipeline_id]`,
`filter[statuses][i][pipeline_id|status_id]`, `filter[responsible_user_id]`,
`filter[created_at|updated_at|closed_at][from|to]`.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from agent_platform.crm.sandbox.api_common import (
    NOT_A_CHOICE,
    Batch,
    CustomFieldValuesIn,
    EntityRefIn,
    FieldError,
    HalJSONResponse,
    KommoItem,
    Limit,
    Page,
    Store,
    TagRefIn,
    added_row,
    attach_tags,
    bad_query,
    bracket_query,
    field_texts,
    filters_of,
    many,
    many_ints,
    matches_query,
    merged_fields,
    no_content,
    ordering,
    page_response,
    render_custom_fields,
    render_tags,
    require_token,
    resolve_custom_fields,
    resolve_tags,
    responsible_errors,
    self_link,
    time_range,
    with_values,
)
from agent_platform.crm.sandbox.api_writes import (
    Changes,
    KommoUpdateItem,
    RecordUpdates,
    given_values,
    update_batch,
    update_one,
    write_batch,
)
from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    USER_ID,
    Company,
    Contact,
    EntityType,
    Lead,
    SandboxStore,
)

router = APIRouter(prefix="/api/v4", dependencies=[Depends(require_token)])

ShownRecord = TypeVar("ShownRecord", Lead, Contact, Company)
# A record as its GET answers it, with the related records `with` asks for.
Render = Callable[[Request, SandboxStore, ShownRecord, Container[str]], dict[str, Any]]


@dataclass(frozen=True)
class _CollectionReads(Generic[ShownRecord]):
    """How a collection's GETs answer: a page of records, or one record."""

    key: str
    order_fields: tuple[str, ...]
    render: Render[ShownRecord]

    def page(
        self,
        request: Request,
        store: SandboxStore,
        query: dict[str, Any],
        records: list[ShownRecord],
        *,
        page: int,
        limit: int,
    ) -> Response:
        """One page of `records` in the order asked for (ties by id), with what `with` asks."""
        field, descending = ordering(query, self.order_fields)
        records.sort(key=lambda record: (getattr(record, field), record.id), reverse=descending)
        embed = with_values(query)
        rendered = [self.render(request, store, record, embed) for record in records]
        return page_response(request, self.key, rendered, page=page, limit=limit)

    def one(self, request: Request, store: SandboxStore, record: ShownRecord | None) -> Response:
        """The record with what `with` asks for; Kommo answers an unknown id with 204, not 404."""
        if record is None:
            return no_content()
        embed = with_values(bracket_query(request))
        return HalJSONResponse(self.render(request, store, record, embed))


# --- bodies ----------------------------------------------------------------------------------


class _Embedded(BaseModel):
    model_config = ConfigDict(strict=True)

    tags: list[TagRefIn] | None = None
    contacts: list[EntityRefIn] = []
    companies: list[EntityRefIn] = Field(default=[], max_length=1)


class _LeadFields(KommoItem):
    name: str = ""
    price: int = Field(default=0, ge=0)
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    created_by: int | None = None
    custom_fields_values: list[CustomFieldValuesIn] | None = None


class LeadIn(_LeadFields):
    embedded: _Embedded | None = Field(default=None, alias="_embedded")


class _RecordUpdateIn(KommoUpdateItem):
    """What a PATCH changes alike on leads and contacts (see `_record_changes`)."""

    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldValuesIn] | None = None
    embedded: _Embedded | None = Field(default=None, alias="_embedded")


class LeadUpdateIn(_RecordUpdateIn):
    name: str | None = Field(default=None, min_length=1)
    price: int | None = Field(default=None, ge=0)
    pipeline_id: int | None = None
    status_id: int | None = None
    loss_reason_id: int | None = None


class ContactIn(KommoItem):
    name: str = ""
    first_name: str = ""
    last_name: str = ""
    responsible_user_id: int | None = None
    created_by: int | None = None
    custom_fields_values: list[CustomFieldValuesIn] | None = None
    embedded: _Embedded | None = Field(default=None, alias="_embedded")


class ContactUpdateIn(_RecordUpdateIn):
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class CompanyIn(KommoItem):
    name: str = Field(min_length=1)
    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldValuesIn] | None = None
    embedded: _Embedded | None = Field(default=None, alias="_embedded")


class _ComplexEmbedded(BaseModel):
    model_config = ConfigDict(strict=True)

    tags: list[TagRefIn] | None = None
    # One new contact and one new company at most per lead, as Kommo documents.
    contacts: list[ContactIn] = Field(default=[], max_length=1)
    companies: list[CompanyIn] = Field(default=[], max_length=1)


class ComplexLeadIn(_LeadFields):
    embedded: _ComplexEmbedded | None = Field(default=None, alias="_embedded")


# --- leads -----------------------------------------------------------------------------------


@router.get("/leads")
async def list_leads(request: Request, store: Store, page: Page = 1, limit: Limit = 50) -> Response:
    query = bracket_query(request)
    filters = filters_of(query)
    ids = set(many_ints(filters.get("id"), "filter.id"))
    names = {name.casefold() for name in many(filters.get("name"))}
    pipelines = set(many_ints(filters.get("pipeline_id"), "filter.pipeline_id"))
    stages = _stage_filter(filters.get("statuses"))
    responsible = set(many_ints(filters.get("responsible_user_id"), "filter.responsible_user_id"))
    created = time_range(filters.get("created_at"), "filter.created_at")
    updated = time_range(filters.get("updated_at"), "filter.updated_at")
    closed = time_range(filters.get("closed_at"), "filter.closed_at")
    text = query.get("query")
    leads = [
        lead
        for lead in store.leads()
        if (not ids or lead.id in ids)
        and (not names or lead.name.casefold() in names)
        and (not pipelines or lead.pipeline_id in pipelines)
        and (not stages or (lead.pipeline_id, lead.status_id) in stages)
        and (not responsible or lead.responsible_user_id in responsible)
        and (created is None or created.holds(lead.created_at))
        and (updated is None or updated.holds(lead.updated_at))
        and (closed is None or closed.holds(lead.closed_at))
        and (
            not text
            or matches_query(
                str(text), lead.id, lead.name, lead.price, *field_texts(lead.custom_fields)
            )
        )
    ]
    return LEAD_READS.page(request, store, query, leads, page=page, limit=limit)


def _stage_filter(node: Any) -> set[tuple[int, int]]:
    if node is None:
        return set()
    entries = node.values() if isinstance(node, dict) else node
    stages = set()
    for index, entry in enumerate(entries):
        try:
            stages.add((int(entry["pipeline_id"]), int(entry["status_id"])))
        except (TypeError, KeyError, ValueError):  # TypeError: an entry that is no object
            where = f"filter.statuses.{index}"
            raise bad_query(where, "InvalidType", "A stage is {pipeline_id, status_id}.") from None
    return stages


@router.get("/leads/{lead_id:int}")
async def get_lead(request: Request, store: Store, lead_id: int) -> Response:
    return LEAD_READS.one(request, store, store.get_lead(lead_id))


@router.post("/leads")
async def add_leads(request: Request, store: Store, items: Batch[LeadIn]) -> Response:
    def check(item: LeadIn, rid: str) -> tuple[list[FieldError], dict[str, Any]]:
        return _lead_plan(store, item, item.embedded or _Embedded(), rid)

    def write(index: int, item: LeadIn, plan: dict[str, Any]) -> dict[str, Any]:
        lead = _create_lead(store, item, plan)
        return added_row(request, index, item, lead.id, f"/api/v4/leads/{lead.id}")

    return write_batch(request, store, "leads", items, check, write)


def _lead_plan(
    store: SandboxStore, item: _LeadFields, embedded: _Embedded, rid: str
) -> tuple[list[FieldError], dict[str, Any]]:
    """Check one lead to add; the errors, or what `_create_lead` needs for it."""
    errors, pipeline_id, status_id = _stage(store, item.pipeline_id, item.status_id, rid)
    errors += responsible_errors(store, item.responsible_user_id, rid)
    field_errors, fields = resolve_custom_fields(store, "leads", item.custom_fields_values, rid)
    errors += field_errors
    tag_errors, tags = resolve_tags(store, "leads", embedded.tags or [], rid, "_embedded.tags")
    errors += tag_errors
    for k, contact in enumerate(embedded.contacts):
        if not store.exists("contacts", contact.id):
            errors.append(FieldError(rid, f"_embedded.contacts.{k}.id", "NotFound", NOT_A_CHOICE))
    for k, company in enumerate(embedded.companies):
        if not store.exists("companies", company.id):
            errors.append(FieldError(rid, f"_embedded.companies.{k}.id", "NotFound", NOT_A_CHOICE))
    main_first = sorted(embedded.contacts, key=lambda ref: not ref.is_main)
    plan = {
        "pipeline_id": pipeline_id,
        "status_id": status_id,
        "custom_fields": tuple(fields),
        "tags": tags,
        "contact_ids": tuple(ref.id for ref in main_first),
        "company_id": embedded.companies[0].id if embedded.companies else None,
    }
    return errors, plan


def _create_lead(store: SandboxStore, item: _LeadFields, plan: dict[str, Any]) -> Lead:
    return store.add_lead(
        name=item.name,
        price=item.price,
        pipeline_id=plan["pipeline_id"],
        status_id=plan["status_id"],
        responsible_user_id=item.responsible_user_id or USER_ID,
        created_by=item.created_by if item.created_by is not None else USER_ID,
        custom_fields=plan["custom_fields"],
        tag_ids=attach_tags(store, "leads", plan["tags"]),
        contact_ids=plan["contact_ids"],
        company_id=plan["company_id"],
    )


def _stage(
    store: SandboxStore, pipeline_id: int | None, status_id: int | None, rid: str
) -> tuple[list[FieldError], int, int]:
    """The pipeline and stage a lead goes to, as Kommo picks them from what was given."""
    if pipeline_id is not None:
        pipeline = store.pipeline(pipeline_id)
        if pipeline is None:
            return [FieldError(rid, "pipeline_id", "NotSupportedChoice", NOT_A_CHOICE)], 0, 0
    elif status_id is not None:
        # Stage ids are unique but for 142/143, which every pipeline shares: the main one's.
        owners = [p for p in store.pipelines() if p.stage(status_id) is not None]
        if not owners:
            return [FieldError(rid, "status_id", "NotSupportedChoice", NOT_A_CHOICE)], 0, 0
        pipeline = next((p for p in owners if p.is_main), owners[0])
    else:
        pipeline = store.main_pipeline()
    if status_id is None:
        return [], pipeline.id, pipeline.stages[0].id
    if pipeline.stage(status_id) is None:
        return [FieldError(rid, "status_id", "NotSupportedChoice", NOT_A_CHOICE)], 0, 0
    return [], pipeline.id, status_id


@router.patch("/leads")
async def update_leads(request: Request, store: Store, items: Batch[LeadUpdateIn]) -> Response:
    return update_batch(request, store, items, LEAD_UPDATES)


@router.patch("/leads/{lead_id:int}")
async def update_lead(
    request: Request, store: Store, lead_id: int, item: Annotated[LeadUpdateIn, Body()]
) -> Response:
    return update_one(request, store, lead_id, item, LEAD_UPDATES)


def _lead_changes(
    store: SandboxStore, lead: Lead, item: LeadUpdateIn, rid: str
) -> tuple[list[FieldError], Changes]:
    given = item.model_fields_set
    errors, changes = _record_changes(
        store, "leads", lead, item, rid, ("name", "price", "responsible_user_id", "loss_reason_id")
    )
    if "pipeline_id" in given or "status_id" in given:
        pipeline_id = item.pipeline_id if item.pipeline_id is not None else lead.pipeline_id
        status_id = item.status_id
        if status_id is None:
            # Moving to another pipeline without a stage lands on its first stage.
            status_id = lead.status_id if pipeline_id == lead.pipeline_id else None
        stage_errors, changes["pipeline_id"], changes["status_id"] = _stage(
            store, pipeline_id, status_id, rid
        )
        errors += stage_errors
    return errors, changes


def _record_changes(
    store: SandboxStore,
    entity_type: EntityType,
    record: Lead | Contact,
    item: _RecordUpdateIn,
    rid: str,
    plain_fields: tuple[str, ...],
) -> tuple[list[FieldError], Changes]:
    """What a PATCH changes of the fields leads and contacts share, and what is wrong with it.

    Custom fields given replace their values and leave the others; tags given replace them all.
    """
    changes = given_values(item, plain_fields)
    errors = responsible_errors(store, item.responsible_user_id, rid)
    if "custom_fields_values" in item.model_fields_set:
        field_errors, fields = resolve_custom_fields(
            store, entity_type, item.custom_fields_values, rid
        )
        errors += field_errors
        changes["custom_fields"] = merged_fields(record.custom_fields, fields)
    if item.embedded is not None and "tags" in item.embedded.model_fields_set:
        tag_errors, tags = resolve_tags(
            store, entity_type, item.embedded.tags or [], rid, "_embedded.tags"
        )
        errors += tag_errors
        changes["tags"] = tags
    return errors, changes


def _with_tag_ids(store: SandboxStore, entity_type: EntityType, changes: Changes) -> Changes:
    """`changes` with its tags (ids, or names created now) given as the `tag_ids` to store."""
    if "tags" not in changes:
        return changes
    rest = {name: value for name, value in changes.items() if name != "tags"}
    return {**rest, "tag_ids": attach_tags(store, entity_type, changes["tags"])}


def _apply_lead_changes(store: SandboxStore, lead: Lead, changes: Changes) -> Lead:
    return store.update_lead(lead.id, **_with_tag_ids(store, "leads", changes))


LEAD_UPDATES: RecordUpdates[Lead, LeadUpdateIn] = RecordUpdates(
    "leads", "Lead", SandboxStore.get_lead, _lead_changes, _apply_lead_changes
)


@router.post("/leads/complex")
async def add_complex_leads(
    request: Request, store: Store, items: Batch[ComplexLeadIn]
) -> Response:
    """Leads each with a new contact and company; answered with a bare array, as Kommo does."""

    def check(item: ComplexLeadIn, rid: str) -> tuple[list[FieldError], dict[str, Any]]:
        embedded = item.embedded or _ComplexEmbedded()
        errors, plan = _lead_plan(store, item, _Embedded(tags=embedded.tags), rid)
        for contact in embedded.contacts:
            errors += _contact_plan(store, contact, rid, "_embedded.contacts.0.")[0]
        for company in embedded.companies:
            errors += resolve_custom_fields(
                store,
                "companies",
                company.custom_fields_values,
                rid,
                "_embedded.companies.0.custom_fields_values",
            )[0]
        return errors, plan

    def write(index: int, item: ComplexLeadIn, plan: dict[str, Any]) -> dict[str, Any]:
        embedded = item.embedded or _ComplexEmbedded()
        new_company = _create_company(store, embedded.companies[0]) if embedded.companies else None
        new_contact = None
        if embedded.contacts:
            new_contact = _create_contact(
                store, embedded.contacts[0], company_id=new_company.id if new_company else None
            )
        plan = {
            **plan,
            "contact_ids": (new_contact.id,) if new_contact else (),
            "company_id": new_company.id if new_company else None,
        }
        lead = _create_lead(store, item, plan)
        return {
            "id": lead.id,
            "contact_id": new_contact.id if new_contact else None,
            "company_id": new_company.id if new_company else None,
            "request_id": [item.rid(index)],
            "merged": False,
        }

    return write_batch(request, store, None, items, check, write)


def lead_json(
    request: Request, store: SandboxStore, lead: Lead, embed: Container[str] = ()
) -> dict[str, Any]:
    embedded: dict[str, Any] = {
        "tags": render_tags(store, "leads", lead.tag_ids),
        "companies": [_link(request, "companies", lead.company_id)] if lead.company_id else [],
    }
    if "contacts" in embed:
        embedded["contacts"] = [
            {**_link(request, "contacts", contact_id), "is_main": position == 0}
            for position, contact_id in enumerate(lead.contact_ids)
            if store.exists("contacts", contact_id)
        ]
    return {
        "id": lead.id,
        "name": lead.name,
        "price": lead.price,
        "responsible_user_id": lead.responsible_user_id,
        "group_id": 0,
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "loss_reason_id": lead.loss_reason_id,
        "created_by": lead.created_by,
        "updated_by": lead.updated_by,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "closed_at": lead.closed_at,
        "closest_task_at": _closest_task_at(store, "leads", lead.id),
        "is_deleted": False,
        "custom_fields_values": render_custom_fields(store, "leads", lead.custom_fields),
        "score": None,
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/leads/{lead.id}"),
        "_embedded": embedded,
    }


LEAD_READS = _CollectionReads("leads", ("created_at", "updated_at", "id"), lead_json)


def _link(request: Request, entity_type: str, entity_id: int) -> dict[str, Any]:
    return {"id": entity_id, "_links": self_link(request, f"/api/v4/{entity_type}/{entity_id}")}


def _closest_task_at(store: SandboxStore, entity_type: str, entity_id: int) -> int | None:
    open_tasks = [
        task.complete_till
        for task in store.tasks()
        if task.entity_type == entity_type and task.entity_id == entity_id and not task.is_completed
    ]
    return min(open_tasks, default=None)


# --- contacts --------------------------------------------------------------------------------


@router.get("/contacts")
async def list_contacts(
    request: Request, store: Store, page: Page = 1, limit: Limit = 50
) -> Response:
    query = bracket_query(request)
    filters = filters_of(query)
    ids = set(many_ints(filters.get("id"), "filter.id"))
    names = {name.casefold() for name in many(filters.get("name"))}
    responsible = set(many_ints(filters.get("responsible_user_id"), "filter.responsible_user_id"))
    created = time_range(filters.get("created_at"), "filter.created_at")
    updated = time_range(filters.get("updated_at"), "filter.updated_at")
    text = query.get("query")
    contacts = [
        contact
        for contact in store.contacts()
        if (not ids or contact.id in ids)
        and (not names or contact.name.casefold() in names)
        and (not responsible or contact.responsible_user_id in responsible)
        and (created is None or created.holds(contact.created_at))
        and (updated is None or updated.holds(contact.updated_at))
        and (
            not text
            or matches_query(
                str(text),
                contact.id,
                contact.name,
                contact.first_name,
                contact.last_name,
                *field_texts(contact.custom_fields),
            )
        )
    ]
    return CONTACT_READS.page(request, store, query, contacts, page=page, limit=limit)


@router.get("/contacts/{contact_id:int}")
async def get_contact(request: Request, store: Store, contact_id: int) -> Response:
    return CONTACT_READS.one(request, store, store.get_contact(contact_id))


@router.post("/contacts")
async def add_contacts(request: Request, store: Store, items: Batch[ContactIn]) -> Response:
    def check(item: ContactIn, rid: str) -> tuple[list[FieldError], None]:
        return _contact_plan(store, item, rid)

    def write(index: int, item: ContactIn, _: None) -> dict[str, Any]:
        contact = _create_contact(store, item)
        return added_row(request, index, item, contact.id, f"/api/v4/contacts/{contact.id}")

    return write_batch(request, store, "contacts", items, check, write)


def _contact_plan(
    store: SandboxStore, item: ContactIn, rid: str, prefix: str = ""
) -> tuple[list[FieldError], None]:
    errors = [
        FieldError(rid, prefix + e.path, e.code, e.detail)
        for e in responsible_errors(store, item.responsible_user_id, rid)
    ]
    field_errors, _ = resolve_custom_fields(
        store, "contacts", item.custom_fields_values, rid, prefix + "custom_fields_values"
    )
    errors += field_errors
    embedded = item.embedded or _Embedded()
    tag_errors, _ = resolve_tags(
        store, "contacts", embedded.tags or [], rid, prefix + "_embedded.tags"
    )
    errors += tag_errors
    for k, company in enumerate(embedded.companies):
        if not store.exists("companies", company.id):
            errors.append(
                FieldError(rid, f"{prefix}_embedded.companies.{k}.id", "NotFound", NOT_A_CHOICE)
            )
    return errors, None


def _create_contact(
    store: SandboxStore, item: ContactIn, *, company_id: int | None = None
) -> Contact:
    _, fields = resolve_custom_fields(store, "contacts", item.custom_fields_values, "0")
    embedded = item.embedded or _Embedded()
    _, tags = resolve_tags(store, "contacts", embedded.tags or [], "0", "")
    if company_id is None and embedded.companies:
        company_id = embedded.companies[0].id
    return store.add_contact(
        name=item.name,
        first_name=item.first_name,
        last_name=item.last_name,
        responsible_user_id=item.responsible_user_id or USER_ID,
        created_by=item.created_by if item.created_by is not None else USER_ID,
        custom_fields=tuple(fields),
        tag_ids=attach_tags(store, "contacts", tags),
        company_id=company_id,
    )


@router.patch("/contacts")
async def update_contacts(
    request: Request, store: Store, items: Batch[ContactUpdateIn]
) -> Response:
    return update_batch(request, store, items, CONTACT_UPDATES)


@router.patch("/contacts/{contact_id:int}")
async def update_contact(
    request: Request, store: Store, contact_id: int, item: Annotated[ContactUpdateIn, Body()]
) -> Response:
    return update_one(request, store, contact_id, item, CONTACT_UPDATES)


def _contact_changes(
    store: SandboxStore, contact: Contact, item: ContactUpdateIn, rid: str
) -> tuple[list[FieldError], Changes]:
    plain_fields = ("name", "first_name", "last_name", "responsible_user_id")
    return _record_changes(store, "contacts", contact, item, rid, plain_fields)


def _apply_contact_changes(store: SandboxStore, contact: Contact, changes: Changes) -> Contact:
    return store.update_contact(contact.id, **_with_tag_ids(store, "contacts", changes))


CONTACT_UPDATES: RecordUpdates[Contact, ContactUpdateIn] = RecordUpdates(
    "contacts", "Contact", SandboxStore.get_contact, _contact_changes, _apply_contact_changes
)


def contact_json(
    request: Request, store: SandboxStore, contact: Contact, embed: Container[str] = ()
) -> dict[str, Any]:
    embedded: dict[str, Any] = {
        "tags": render_tags(store, "contacts", contact.tag_ids),
        "companies": [_link(request, "companies", contact.company_id)]
        if contact.company_id
        else [],
    }
    if "leads" in embed:
        embedded["leads"] = [
            _link(request, "leads", lead.id) for lead in store.leads_of_contact(contact.id)
        ]
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "responsible_user_id": contact.responsible_user_id,
        "group_id": 0,
        "created_by": contact.created_by,
        "updated_by": contact.updated_by,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "closest_task_at": _closest_task_at(store, "contacts", contact.id),
        "is_deleted": False,
        "is_unsorted": False,
        "custom_fields_values": render_custom_fields(store, "contacts", contact.custom_fields),
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/contacts/{contact.id}"),
        "_embedded": embedded,
    }


# Kommo orders contacts, and companies, by update time or id only.
CONTACT_READS = _CollectionReads("contacts", ("updated_at", "id"), contact_json)


# --- companies -------------------------------------------------------------------------------


@router.get("/companies")
async def list_companies(
    request: Request, store: Store, page: Page = 1, limit: Limit = 50
) -> Response:
    query = bracket_query(request)
    filters = query.get("filter") or {}
    ids = set(many_ints(filters.get("id") if isinstance(filters, dict) else None, "filter.id"))
    text = query.get("query")
    companies = [
        company
        for company in store.companies()
        if (not ids or company.id in ids)
        and (
            not text
            or matches_query(
                str(text), company.id, company.name, *field_texts(company.custom_fields)
            )
        )
    ]
    return COMPANY_READS.page(request, store, query, companies, page=page, limit=limit)


@router.get("/companies/{company_id:int}")
async def get_company(request: Request, store: Store, company_id: int) -> Response:
    return COMPANY_READS.one(request, store, store.get_company(company_id))


@router.post("/companies")
async def add_companies(request: Request, store: Store, items: Batch[CompanyIn]) -> Response:
    def check(item: CompanyIn, rid: str) -> tuple[list[FieldError], None]:
        errors = responsible_errors(store, item.responsible_user_id, rid)
        errors += resolve_custom_fields(store, "companies", item.custom_fields_values, rid)[0]
        return errors, None

    def write(index: int, item: CompanyIn, _: None) -> dict[str, Any]:
        company = _create_company(store, item)
        return added_row(request, index, item, company.id, f"/api/v4/companies/{company.id}")

    return write_batch(request, store, "companies", items, check, write)


def _create_company(store: SandboxStore, item: CompanyIn) -> Company:
    _, fields = resolve_custom_fields(store, "companies", item.custom_fields_values, "0")
    embedded = item.embedded or _Embedded()
    _, tags = resolve_tags(store, "companies", embedded.tags or [], "0", "")
    return store.add_company(
        name=item.name,
        responsible_user_id=item.responsible_user_id or USER_ID,
        custom_fields=tuple(fields),
        tag_ids=attach_tags(store, "companies", tags),
    )


def company_json(
    request: Request, store: SandboxStore, company: Company, embed: Container[str] = ()
) -> dict[str, Any]:
    embedded: dict[str, Any] = {"tags": render_tags(store, "companies", company.tag_ids)}
    if "contacts" in embed:
        embedded["contacts"] = [
            _link(request, "contacts", contact.id)
            for contact in store.contacts()
            if contact.company_id == company.id
        ]
    if "leads" in embed:
        embedded["leads"] = [
            _link(request, "leads", lead.id)
            for lead in store.leads()
            if lead.company_id == company.id
        ]
    return {
        "id": company.id,
        "name": company.name,
        "responsible_user_id": company.responsible_user_id,
        "group_id": 0,
        "created_by": company.created_by,
        "updated_by": company.updated_by,
        "created_at": company.created_at,
        "updated_at": company.updated_at,
        "closest_task_at": _closest_task_at(store, "companies", company.id),
        "is_deleted": False,
        "custom_fields_values": render_custom_fields(store, "companies", company.custom_fields),
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/companies/{company.id}"),
        "_embedded": embedded,
    }


COMPANY_READS = _CollectionReads("companies", ("updated_at", "id"), company_json)
