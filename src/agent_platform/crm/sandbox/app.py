"""The Kommo sandbox over HTTP: the part of Kommo API v4 the platform uses, answered like Kommo.

Bodies follow Kommo's shapes (HAL `_embedded`, `_links`, `_page`; ids as ints; times as unix
seconds), errors follow its RFC 7807 problem bodies with `validation-errors`, and an empty
result is a bare 204, so a client that works against the sandbox works against Kommo. The API
routes live in `api_entities` (leads, contacts, companies), `api_activity` (notes, tasks,
calls, events) and `api_account` (account, users, pipelines, custom fields, tags, webhooks);
`api_common` holds what they share. The webhooks clients subscribe to are really sent
(`webhook_sender`, running for the app's lifespan), and `page` is where a person plays a lead.

`app.state` holds: `store` (the account, see store.py), `access_token` (the static token the
API accepts), `accepts_token` (the check `require_token` makes; replace it to accept other
tokens), `subdomain`, `webhook_sender`, and what the Chats and Salesbot endpoints received
(`chats_channel`, `salesbot_record`), which the page reads to show the platform's replies.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRouter
from pydantic import BaseModel, ConfigDict, HttpUrl
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_platform.crm.sandbox import chats, salesbot
from agent_platform.crm.sandbox.api_account import router as account_router
from agent_platform.crm.sandbox.api_activity import router as activity_router
from agent_platform.crm.sandbox.api_common import (
    FieldError,
    InvalidRequest,
    Store,
    fixed_token,
    no_content,
    problem,
    validation_failed,
)
from agent_platform.crm.sandbox.api_entities import router as entities_router
from agent_platform.crm.sandbox.faults import install_faults
from agent_platform.crm.sandbox.oauth import install_oauth
from agent_platform.crm.sandbox.page import install_page
from agent_platform.crm.sandbox.store import SandboxStore
from agent_platform.crm.sandbox.webhook_payloads import AccountRef
from agent_platform.crm.sandbox.webhook_sender import DEFAULT_POLICY, WebhookPolicy, WebhookSender


def create_sandbox_app(
    access_token: str,
    subdomain: str = "sandbox",
    *,
    clock: Callable[[], float] = time.time,
    webhook_policy: WebhookPolicy = DEFAULT_POLICY,
) -> FastAPI:
    """`clock` and `webhook_policy` are for tests: time that jumps, retries that do not wait."""
    if not access_token:
        raise ValueError("the sandbox needs a non-empty access token, or it is open to anyone")
    app = FastAPI(
        title="Kommo sandbox",
        description="The subset of Kommo API v4 that the GPT Agent Platform uses.",
        lifespan=_lifespan,
    )
    store = SandboxStore(clock=clock)
    app.state.store = store
    app.state.access_token = access_token
    app.state.accepts_token = fixed_token(access_token)
    app.state.subdomain = subdomain
    app.state.webhook_sender = WebhookSender(
        store, AccountRef(subdomain), policy=webhook_policy, clock=clock
    )
    # Made here rather than on first use by their endpoints, so the page can always read them.
    app.state.chats_channel = chats.ChatsChannel()
    app.state.salesbot_record = salesbot.SalesbotRecord()
    app.include_router(entities_router)
    app.include_router(activity_router)
    app.include_router(account_router)
    app.include_router(_inspection)
    app.exception_handler(HTTPException)(_http_problem)
    app.exception_handler(RequestValidationError)(_validation_problem)
    app.exception_handler(InvalidRequest)(_invalid_request)
    app.add_middleware(RequestLog)
    app.include_router(chats.router)
    app.include_router(salesbot.router)
    install_oauth(app)
    install_faults(app)
    install_page(app)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    sender: WebhookSender = app.state.webhook_sender
    await sender.start()
    try:
        yield
    finally:
        await sender.stop()


def sandbox_store(app: FastAPI) -> SandboxStore:
    """The account of a sandbox app, for tests and the demo that run it in-process."""
    store: SandboxStore = app.state.store
    return store


class RequestLog:
    """Logs each answered API request in `store.requests` (not the /sandbox/ inspection ones).

    Middleware added after this one wraps it: what those answer themselves never reaches here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/sandbox/"):
            await self.app(scope, receive, send)
            return
        store: SandboxStore = scope["app"].state.store

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                store.record_request(scope["method"], scope["path"], int(message["status"]))
            await send(message)

        await self.app(scope, receive, send_logged)


# Sandbox-only and unauthenticated on purpose: tests and the demo page read what the platform
# wrote without holding the token, and the sandbox holds nothing but demo data.
_inspection = APIRouter(prefix="/sandbox")


@_inspection.get("/notes")
async def all_notes(store: Store) -> Response:
    return JSONResponse({"notes": [dataclasses.asdict(note) for note in store.notes()]})


@_inspection.post("/reset")
async def reset(store: Store) -> Response:
    store.reset()
    return no_content()


@_inspection.get("/webhooks/deliveries")
async def webhook_deliveries(request: Request) -> Response:
    """Every webhook (and Salesbot widget call) sent or being sent, oldest first."""
    sender: WebhookSender = request.app.state.webhook_sender
    return JSONResponse(
        {"deliveries": [dataclasses.asdict(delivery) for delivery in sender.deliveries()]}
    )


class SalesbotWidgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrl


@_inspection.put("/salesbot/widget")
async def set_salesbot_widget(
    store: Store, widget: Annotated[SalesbotWidgetIn, Body()]
) -> Response:
    """From now on every customer message starts the Salesbot, which calls this URL."""
    store.salesbot_widget_url = str(widget.url)
    return JSONResponse({"url": store.salesbot_widget_url})


@_inspection.delete("/salesbot/widget")
async def remove_salesbot_widget(store: Store) -> Response:
    store.salesbot_widget_url = None
    return no_content()


async def _http_problem(request: Request, exc: HTTPException) -> Response:
    response = problem(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidRequest)
    return validation_failed(exc.errors)


async def _validation_problem(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 recast as Kommo's 400, each error placed on its batch item and field."""
    body = exc.body
    return validation_failed(_field_error(error, body) for error in exc.errors())


def _field_error(error: dict[str, Any], body: Any) -> FieldError:
    location, code, detail = list(error["loc"]), error["type"], error["msg"]
    if code == "json_invalid":  # its location holds a character offset, not an item index
        return FieldError("0", "body", code, detail)
    if location[0] == "body" and len(location) > 1 and isinstance(location[1], int):
        # A batch: ("body", 2, "params", "text") is item 2 (or its request_id), "params.text".
        index = location[1]
        item = body[index] if isinstance(body, list) and index < len(body) else None
        given = item.get("request_id") if isinstance(item, dict) else None
        request_id = given if isinstance(given, str) and given else str(index)
        return FieldError(request_id, ".".join(map(str, location[2:])), code, detail)
    if location[0] == "body" and len(location) > 1:
        # A single object (PATCH of one record, webhooks): the path inside it.
        return FieldError("0", ".".join(map(str, location[1:])), code, detail)
    # The query, the path, or a body that is no list at all: not any one item's fault.
    return FieldError("0", ".".join(map(str, location)), code, detail)
