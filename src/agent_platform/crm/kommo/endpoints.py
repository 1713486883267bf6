"""The Kommo webhook endpoint."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import WebhookFormatError, read_webhook
from agent_platform.db.session import transaction
from agent_platform.kit.errors import AppError
from agent_platform.ops import metrics
from agent_platform.services import Services

router = APIRouter(tags=["webhooks"])

MAX_WEBHOOK_BYTES = 1_000_000


class NotAKommoWebhookError(AppError):
    code = "invalid_webhook"


@router.post("/webhooks/kommo/{connection_token}", summary="Receive a Kommo webhook")
async def receive_kommo_webhook(connection_token: str, request: Request) -> dict[str, Any]:
    services: Services = request.app.state.services
    webhook = await _read(request)
    async with transaction(services.sessions) as session:
        receipt = await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connection_token,
            webhook=webhook,
        )
    return {"status": "ok", **asdict(receipt)}


async def _read(request: Request) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return _reject("Kommo webhooks are form-encoded (application/x-www-form-urlencoded).")
    if int(request.headers.get("content-length") or 0) > MAX_WEBHOOK_BYTES:
        return _reject("The webhook body is too large.")
    form = await request.form(max_fields=5000)
    pairs = [(key, value) for key, value in form.multi_items() if not isinstance(value, UploadFile)]
    try:
        return read_webhook(pairs)
    except WebhookFormatError as exc:
        return _reject(str(exc))


def _reject(message: str) -> Any:
    metrics.WEBHOOKS_RECEIVED.labels(source="kommo", result="rejected").inc()
    raise NotAKommoWebhookError(message)
