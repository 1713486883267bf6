"""Kommo's calls to us: its webhooks and its Salesbot's widget_request."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, NoReturn

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from agent_platform.crm.kommo.service import accept_salesbot_request, accept_webhook
from agent_platform.crm.kommo.webhooks import (
    SalesbotRequest,
    WebhookFormatError,
    parse_bracket_form,
    read_salesbot_request,
    read_webhook,
)
from agent_platform.db.session import transaction
from agent_platform.kit.errors import AppError
from agent_platform.ops import metrics
from agent_platform.services import Services

router = APIRouter(tags=["webhooks"])

MAX_WEBHOOK_BYTES = 1_000_000
MAX_FORM_FIELDS = 5000
FORM = "application/x-www-form-urlencoded"


class NotAKommoWebhookError(AppError):
    code = "invalid_webhook"


@router.post("/webhooks/kommo/{connection_token}", summary="Receive a Kommo webhook")
async def receive_kommo_webhook(connection_token: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    if not _content_type(request).startswith(FORM):
        _reject("Kommo webhooks are form-encoded (application/x-www-form-urlencoded).")
    try:
        webhook = read_webhook(await _form_pairs(request))
    except WebhookFormatError as exc:
        _reject(str(exc))
    async with transaction(services.sessions) as session:
        receipt = await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connection_token,
            webhook=webhook,
        )
    return {"status": "ok", **asdict(receipt)}


@router.post(
    "/webhooks/kommo/{connection_token}/salesbot",
    summary="Receive a Kommo Salesbot widget_request; the reply continues the bot",
)
async def receive_salesbot_request(connection_token: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    widget_request = await _read_salesbot_request(request)
    async with transaction(services.sessions) as session:
        receipt = await accept_salesbot_request(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connection_token,
            request=widget_request,
        )
    return {"status": "ok", **asdict(receipt)}


async def _read_salesbot_request(request: Request) -> SalesbotRequest:
    content_type = _content_type(request)
    try:
        if content_type.startswith("application/json"):
            body = await _json_object(request)
        elif content_type.startswith(FORM):
            body = parse_bracket_form(await _form_pairs(request))
        else:
            _reject("A widget_request is JSON or form-encoded.")
        return read_salesbot_request(body)
    except WebhookFormatError as exc:
        _reject(str(exc))


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").lower()


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    _check_size(request)
    form = await request.form(max_fields=MAX_FORM_FIELDS)
    return [(key, value) for key, value in form.multi_items() if not isinstance(value, UploadFile)]


async def _json_object(request: Request) -> dict[str, Any]:
    _check_size(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:
        raise WebhookFormatError("the body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise WebhookFormatError("the body is not a JSON object")
    return body


def _check_size(request: Request) -> None:
    try:
        declared = int(request.headers.get("content-length") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_WEBHOOK_BYTES:
        _reject("The body is too large.")


def _reject(message: str) -> NoReturn:
    metrics.WEBHOOKS_RECEIVED.labels(source="kommo", result="rejected").inc()
    raise NotAKommoWebhookError(message)
