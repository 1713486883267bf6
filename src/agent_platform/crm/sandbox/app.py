"""The Kommo sandbox over HTTP: the leads, contacts, notes and account calls of Kommo API v4.

Bodies follow Kommo's shapes (HAL `_embedded`, `_links`, `_page`; ids as ints; times as unix
seconds), errors follow its RFC 7807 problem bodies, and an empty result is a bare 204, so a
client that works against the sandbox works against Kommo.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable
from http import HTTPStatus
from typing import Annotated, Any, Literal, NamedTuple

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    INCOMING_STATUS_ID,
    PIPELINE_ID,
    STATUS_IDS,
    USER_ID,
    Contact,
    EntityType,
    Lead,
    Note,
    SandboxStore,
)

MAX_PAGE_SIZE = 250  # Kommo's cap on `limit`


class HalJSONResponse(JSONResponse):
    media_type = "application/hal+json"


class ProblemJSONResponse(JSONResponse):
    media_type = "application/problem+json"


class _KommoItem(BaseModel):
    # Kommo checks JSON types strictly ("5" is not an id) and ignores fields it does not know.
    model_config = ConfigDict(strict=True)

    # Echoed back so a client can match created records to the items it sent.
    request_id: str | None = None


class LeadIn(_KommoItem):
    name: str = ""
    price: int = Field(default=0, ge=0)
    pipeline_id: int = PIPELINE_ID
    status_id: int = INCOMING_STATUS_ID


class ContactIn(_KommoItem):
    name: str = ""
    first_name: str = ""
    last_name: str = ""


class NoteParams(BaseModel):
    model_config = ConfigDict(strict=True)

    text: str = Field(min_length=1)


class NoteIn(_KommoItem):
    entity_id: int
    # The platform writes only text notes; other Kommo note types are refused like unknown ones.
    note_type: Literal["common"]
    params: NoteParams


# Kommo's add calls take a non-empty JSON array of items.
LeadBatch = Annotated[list[LeadIn], Body(min_length=1)]
ContactBatch = Annotated[list[ContactIn], Body(min_length=1)]
NoteBatch = Annotated[list[NoteIn], Body(min_length=1)]


class FieldError(NamedTuple):
    """One entry of Kommo's `validation-errors`: which item, which field, what is wrong."""

    request_id: str
    path: str
    code: str
    detail: str


def create_sandbox_app(access_token: str, subdomain: str = "sandbox") -> FastAPI:
    if not access_token:
        raise ValueError("the sandbox needs a non-empty access token, or it is open to anyone")
    app = FastAPI(
        title="Kommo sandbox",
        description="The subset of Kommo API v4 that the GPT Agent Platform uses.",
    )
    app.state.store = SandboxStore()
    app.state.access_token = access_token
    app.state.subdomain = subdomain
    app.include_router(_api)
    app.include_router(_inspection)
    app.exception_handler(HTTPException)(_http_problem)
    app.exception_handler(RequestValidationError)(_validation_problem)
    return app


def _require_token(request: Request) -> None:
    expected = f"Bearer {request.app.state.access_token}".encode()
    given = request.headers.get("Authorization", "").encode()
    if not secrets.compare_digest(given, expected):
        raise HTTPException(HTTPStatus.UNAUTHORIZED, "Invalid or missing access token")


def _store(request: Request) -> SandboxStore:
    store: SandboxStore = request.app.state.store
    return store


Store = Annotated[SandboxStore, Depends(_store)]
Page = Annotated[int, Query(ge=1)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

_api = APIRouter(prefix="/api/v4", dependencies=[Depends(_require_token)])


@_api.get("/account")
async def get_account(request: Request, store: Store) -> Response:
    return HalJSONResponse(
        {
            "id": ACCOUNT_ID,
            "name": f"{request.app.state.subdomain} (Kommo sandbox)",
            "subdomain": request.app.state.subdomain,
            "created_at": store.created_at,
            "created_by": 0,
            "updated_at": store.created_at,
            "updated_by": 0,
            "current_user_id": USER_ID,
            "country": "US",
            "currency": "USD",
            "currency_symbol": "$",
            "customers_mode": "disabled",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": True,
            "contact_name_display_order": 1,
            "_links": _self(request, "/api/v4/account"),
        }
    )


@_api.get("/leads")
async def list_leads(request: Request, store: Store, page: Page = 1, limit: Limit = 50) -> Response:
    leads = [_lead_json(request, lead) for lead in store.leads()]
    return _page(request, "leads", leads, page=page, limit=limit)


@_api.post("/leads")
async def add_leads(request: Request, store: Store, items: LeadBatch) -> Response:
    errors = []
    for index, item in enumerate(items):
        if item.pipeline_id != PIPELINE_ID:
            errors.append(
                FieldError(str(index), "pipeline_id", "NotSupportedChoice", "Unknown pipeline")
            )
        if item.status_id not in STATUS_IDS:
            errors.append(
                FieldError(str(index), "status_id", "NotSupportedChoice", "Unknown status")
            )
    if errors:
        return _validation_failed(errors)
    rows = []
    for index, item in enumerate(items):
        lead = store.add_lead(
            name=item.name, price=item.price, pipeline_id=item.pipeline_id, status_id=item.status_id
        )
        rows.append(_added_row(request, index, item, lead.id, f"/api/v4/leads/{lead.id}"))
    return _added(request, "leads", rows)


@_api.get("/leads/{lead_id}")
async def get_lead(request: Request, store: Store, lead_id: int) -> Response:
    lead = store.get_lead(lead_id)
    # Kommo answers an unknown id with 204, not 404.
    return _no_content() if lead is None else HalJSONResponse(_lead_json(request, lead))


@_api.get("/contacts")
async def list_contacts(
    request: Request, store: Store, page: Page = 1, limit: Limit = 50
) -> Response:
    contacts = [_contact_json(request, contact) for contact in store.contacts()]
    return _page(request, "contacts", contacts, page=page, limit=limit)


@_api.post("/contacts")
async def add_contacts(request: Request, store: Store, items: ContactBatch) -> Response:
    rows = []
    for index, item in enumerate(items):
        contact = store.add_contact(
            name=item.name, first_name=item.first_name, last_name=item.last_name
        )
        rows.append(_added_row(request, index, item, contact.id, f"/api/v4/contacts/{contact.id}"))
    return _added(request, "contacts", rows)


@_api.get("/contacts/{contact_id}")
async def get_contact(request: Request, store: Store, contact_id: int) -> Response:
    contact = store.get_contact(contact_id)
    # Kommo answers an unknown id with 204, not 404.
    return _no_content() if contact is None else HalJSONResponse(_contact_json(request, contact))


@_api.post("/{entity_type}/notes")
async def add_notes(
    request: Request, store: Store, entity_type: EntityType, items: NoteBatch
) -> Response:
    errors = [
        FieldError(str(index), "entity_id", "NotFound", f"No {entity_type} with this id")
        for index, item in enumerate(items)
        if not store.exists(entity_type, item.entity_id)
    ]
    if errors:  # the batch is all or nothing
        return _validation_failed(errors)
    rows = []
    for index, item in enumerate(items):
        note = store.add_note(entity_type, item.entity_id, item.note_type, item.params.model_dump())
        row = _added_row(request, index, item, note.id, _note_path(note))
        rows.append({**row, "entity_id": note.entity_id})
    return _added(request, "notes", rows)


@_api.get("/{entity_type}/{entity_id}/notes")
async def list_notes(
    request: Request,
    store: Store,
    entity_type: EntityType,
    entity_id: int,
    page: Page = 1,
    limit: Limit = 50,
    order: Annotated[Literal["asc", "desc"], Query(alias="order[id]")] = "asc",
) -> Response:
    notes = store.notes(entity_type, entity_id)
    if order == "desc":
        notes.reverse()
    rendered = [_note_json(request, note) for note in notes]
    return _page(request, "notes", rendered, page=page, limit=limit)


# Sandbox-only and unauthenticated on purpose: tests and the demo page read what the platform
# wrote without holding the token, and the sandbox holds nothing but demo data.
_inspection = APIRouter(prefix="/sandbox")


@_inspection.get("/notes")
async def all_notes(store: Store) -> Response:
    return JSONResponse({"notes": [dataclasses.asdict(note) for note in store.notes()]})


@_inspection.post("/reset")
async def reset(store: Store) -> Response:
    store.reset()
    return _no_content()


def _lead_json(request: Request, lead: Lead) -> dict[str, Any]:
    return {
        "id": lead.id,
        "name": lead.name,
        "price": lead.price,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "loss_reason_id": None,
        "created_by": USER_ID,
        "updated_by": USER_ID,
        "created_at": lead.created_at,
        "updated_at": lead.updated_at,
        "closed_at": None,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": None,
        "score": None,
        "account_id": ACCOUNT_ID,
        "_links": _self(request, f"/api/v4/leads/{lead.id}"),
        "_embedded": {"tags": [], "companies": []},
    }


def _contact_json(request: Request, contact: Contact) -> dict[str, Any]:
    return {
        "id": contact.id,
        "name": contact.name,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "created_by": USER_ID,
        "updated_by": USER_ID,
        "created_at": contact.created_at,
        "updated_at": contact.updated_at,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": None,
        "account_id": ACCOUNT_ID,
        "_links": _self(request, f"/api/v4/contacts/{contact.id}"),
        "_embedded": {"tags": [], "companies": []},
    }


def _note_json(request: Request, note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "entity_id": note.entity_id,
        "created_by": USER_ID,
        "updated_by": USER_ID,
        "created_at": note.created_at,
        "updated_at": note.created_at,
        "responsible_user_id": USER_ID,
        "group_id": 0,
        "note_type": note.note_type,
        "params": note.params,
        "account_id": ACCOUNT_ID,
        "_links": _self(request, _note_path(note)),
    }


def _note_path(note: Note) -> str:
    return f"/api/v4/{note.entity_type}/{note.entity_id}/notes/{note.id}"


def _self(request: Request, path: str) -> dict[str, Any]:
    # Links point at the sandbox itself, as Kommo's point at the account's own domain.
    return {"self": {"href": str(request.base_url).rstrip("/") + path}}


def _page(
    request: Request, key: str, items: list[dict[str, Any]], page: int, limit: int
) -> Response:
    start = (page - 1) * limit
    chunk = items[start : start + limit]
    if not chunk:
        return _no_content()
    links = {"self": {"href": str(request.url.include_query_params(page=page, limit=limit))}}
    if start + limit < len(items):
        links["next"] = {"href": str(request.url.include_query_params(page=page + 1, limit=limit))}
    return HalJSONResponse({"_page": page, "_links": links, "_embedded": {key: chunk}})


def _added_row(
    request: Request, index: int, item: _KommoItem, record_id: int, path: str
) -> dict[str, Any]:
    # Kommo falls back to the item's position when the client sent no request_id.
    request_id = item.request_id or str(index)
    return {"id": record_id, "request_id": request_id, "_links": _self(request, path)}


def _added(request: Request, key: str, rows: list[dict[str, Any]]) -> Response:
    """Kommo's answer to a batch add: per item its new id, its request_id and a link to it."""
    return HalJSONResponse({"_links": _self(request, request.url.path), "_embedded": {key: rows}})


def _no_content() -> Response:
    return Response(status_code=HTTPStatus.NO_CONTENT)


def _problem(status: int, detail: str, extra: dict[str, Any] | None = None) -> Response:
    body = {
        "title": HTTPStatus(status).phrase,
        "type": f"https://httpstatus.es/{int(status)}",
        "status": int(status),
        "detail": detail,
        **(extra or {}),
    }
    return ProblemJSONResponse(body, status_code=status)


def _validation_failed(errors: Iterable[FieldError]) -> Response:
    by_item: dict[str, list[dict[str, str]]] = {}
    for error in errors:
        by_item.setdefault(error.request_id, []).append(
            {"code": error.code, "path": error.path, "detail": error.detail}
        )
    per_item = [{"request_id": item, "errors": entries} for item, entries in by_item.items()]
    return _problem(
        HTTPStatus.BAD_REQUEST, "Request validation failed", {"validation-errors": per_item}
    )


async def _http_problem(request: Request, exc: HTTPException) -> Response:
    response = _problem(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 recast as Kommo's 400, each error placed on its batch item and field."""
    return _validation_failed(_field_error(error) for error in exc.errors())


def _field_error(error: dict[str, Any]) -> FieldError:
    location, code, detail = list(error["loc"]), error["type"], error["msg"]
    if code == "json_invalid":  # its location holds a character offset, not an item index
        return FieldError("0", "body", code, detail)
    if location[0] == "body" and len(location) > 1 and isinstance(location[1], int):
        # Every body here is a batch: ("body", 2, "params", "text") is item "2", "params.text".
        return FieldError(str(location[1]), ".".join(map(str, location[2:])), code, detail)
    # The query, the path, or a body that is no list at all: not any one item's fault.
    return FieldError("0", ".".join(map(str, location)), code, detail)
