"""The sandbox's page where a person plays a lead: pick or create one, write, read the replies.

`GET /sandbox/` lists the leads; `POST /sandbox/leads` creates one (a contact of that name
with a lead of the same name). `GET /sandbox/leads/{id}` is the conversation: write as the
customer (the default) or as a manager with `POST /sandbox/leads/{id}/messages`, and read the
timeline (timeline.py), which static/sandbox.js refreshes every 2 seconds from
`GET /sandbox/leads/{id}/timeline`.

A form that is taken answers with a 303 redirect to the page, so reloading never posts twice;
one that cannot be taken (an empty text) gets the page again with 400 and the reason, and
changes nothing. Sandbox-only and unauthenticated like the other /sandbox/ routes: the
sandbox holds demo data only. Jinja2 escapes everything it prints.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from agent_platform.crm.sandbox.api_common import Store
from agent_platform.crm.sandbox.store import MANAGER_USER_ID, Lead, SandboxStore
from agent_platform.crm.sandbox.timeline import TimelineEntry, lead_timeline

HERE = Path(__file__).parent
# Kommo's limit on a lead's or contact's name.
MAX_NAME_LENGTH = 255
# Long enough for any chat message a person types; Kommo's channels cut far shorter.
MAX_TEXT_LENGTH = 10_000
AUTHORS = ("customer", "manager")


def _clock(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S")


templates = Jinja2Templates(
    env=Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
)
templates.env.filters["clock"] = _clock

router = APIRouter(prefix="/sandbox", include_in_schema=False)


def install_page(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/sandbox/static", StaticFiles(directory=HERE / "static"), name="sandbox_static")


@router.get("/", name="sandbox_leads")
async def leads_page(request: Request, store: Store) -> Response:
    return _leads_page(request, store)


@router.post("/leads", name="sandbox_create_lead")
async def create_lead(request: Request, store: Store) -> Response:
    name = _field(await request.form(), "name")
    if not name or len(name) > MAX_NAME_LENGTH:
        error = f"Give the lead a name of 1 to {MAX_NAME_LENGTH} characters."
        return _leads_page(request, store, error=error, name=name)
    contact = store.add_contact(name=name)
    lead = store.add_lead(name=name, contact_ids=(contact.id,))
    return _to_lead(request, lead)


@router.get("/leads/{lead_id}", name="sandbox_lead")
async def lead_page(request: Request, store: Store, lead_id: int) -> Response:
    return _lead_page(request, store, _lead(store, lead_id))


@router.get("/leads/{lead_id}/timeline", name="sandbox_lead_timeline")
async def lead_timeline_part(request: Request, store: Store, lead_id: int) -> Response:
    lead = _lead(store, lead_id)
    return templates.TemplateResponse(
        request, "timeline.html", {"entries": _timeline(request, store, lead)}
    )


@router.post("/leads/{lead_id}/messages", name="sandbox_write_message")
async def write_message(request: Request, store: Store, lead_id: int) -> Response:
    lead = _lead(store, lead_id)
    form = await request.form()
    text, author = _field(form, "text"), _field(form, "author") or "customer"
    error = _message_error(text, author)
    if error is not None:
        return _lead_page(request, store, lead, error=error, text=text, author=author)
    if author == "manager":
        store.add_outgoing_message(lead.id, text, MANAGER_USER_ID)
    else:
        store.add_incoming_message(lead.id, text)
    return _to_lead(request, lead)


def _message_error(text: str, author: str) -> str | None:
    if author not in AUTHORS:
        return "Write as the customer or as a manager."
    if not text or len(text) > MAX_TEXT_LENGTH:
        return f"Write a message of 1 to {MAX_TEXT_LENGTH} characters."
    return None


def _leads_page(
    request: Request, store: SandboxStore, *, error: str | None = None, name: str = ""
) -> Response:
    rows = [
        {
            "lead": lead,
            "stage": _stage_name(store, lead),
            "contact": store.get_contact(lead.contact_ids[0]) if lead.contact_ids else None,
            "messages": len(store.messages_of(lead.id)),
        }
        for lead in sorted(store.leads(), key=lambda lead: lead.id, reverse=True)
    ]
    return templates.TemplateResponse(
        request,
        "leads.html",
        {"rows": rows, "error": error, "name": name, "max_name_length": MAX_NAME_LENGTH},
        status_code=HTTPStatus.BAD_REQUEST if error else HTTPStatus.OK,
    )


def _lead_page(
    request: Request,
    store: SandboxStore,
    lead: Lead,
    *,
    error: str | None = None,
    text: str = "",
    author: str = "customer",
) -> Response:
    context: dict[str, Any] = {
        "lead": lead,
        "stage": _stage_name(store, lead),
        "entries": _timeline(request, store, lead),
        "error": error,
        "text": text,
        "author": author,
        "max_text_length": MAX_TEXT_LENGTH,
    }
    return templates.TemplateResponse(
        request,
        "lead.html",
        context,
        status_code=HTTPStatus.BAD_REQUEST if error else HTTPStatus.OK,
    )


def _timeline(request: Request, store: SandboxStore, lead: Lead) -> list[TimelineEntry]:
    state = request.app.state
    return lead_timeline(store, lead.id, state.chats_channel, state.salesbot_record)


def _lead(store: SandboxStore, lead_id: int) -> Lead:
    lead = store.get_lead(lead_id)
    if lead is None:
        raise HTTPException(HTTPStatus.NOT_FOUND, f"There is no lead {lead_id}.")
    return lead


def _stage_name(store: SandboxStore, lead: Lead) -> str:
    pipeline = store.pipeline(lead.pipeline_id)
    stage = pipeline.stage(lead.status_id) if pipeline else None
    return stage.name if stage else str(lead.status_id)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    # A file where text belongs is no text at all.
    return value.strip() if isinstance(value, str) else ""


def _to_lead(request: Request, lead: Lead) -> Response:
    return RedirectResponse(
        str(request.url_for("sandbox_lead", lead_id=lead.id)), status_code=HTTPStatus.SEE_OTHER
    )
