"""Accepting Kommo webhooks: store each new message in the inbox and defer its job atomically."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import procrastinate
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.tasks import answer_incoming_message
from agent_platform.crm import repository
from agent_platform.crm.kommo.webhooks import KommoWebhook
from agent_platform.kit.errors import NotFoundError
from agent_platform.ops import metrics
from agent_platform.queue.registry import defer_in_transaction

SOURCE = "kommo"
log = structlog.get_logger("kommo.webhooks")


@dataclass(frozen=True)
class WebhookReceipt:
    accepted: int
    duplicates: int
    ignored: int


async def accept_webhook(
    session: AsyncSession,
    queue: procrastinate.App,
    queue_name: str,
    *,
    connection_token: str,
    webhook: KommoWebhook,
) -> WebhookReceipt:
    target = await repository.webhook_target(session, connection_token)
    if target is None:
        metrics.WEBHOOKS_RECEIVED.labels(source=SOURCE, result="unknown_token").inc()
        raise NotFoundError("No connection has this webhook address.")
    structlog.contextvars.bind_contextvars(organization_id=str(target.organization_id))
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    accepted = duplicates = ignored = 0
    for message in webhook.messages:
        if message.direction != "incoming":
            ignored += 1
            continue
        event_id = await repository.insert_inbox_event_if_new(
            session,
            target=target,
            source=SOURCE,
            dedupe_key=message.dedupe_key,
            payload={"message": asdict(message), "account_id": webhook.account_id},
            request_id=request_id,
        )
        if event_id is None:
            duplicates += 1
            continue
        await defer_in_transaction(
            session, queue, answer_incoming_message, queue_name, inbox_event_id=str(event_id)
        )
        accepted += 1
    for result, count in (("accepted", accepted), ("duplicate", duplicates), ("ignored", ignored)):
        if count:
            metrics.WEBHOOKS_RECEIVED.labels(source=SOURCE, result=result).inc(count)
    log.info("webhook_received", accepted=accepted, duplicates=duplicates, ignored=ignored)
    return WebhookReceipt(accepted=accepted, duplicates=duplicates, ignored=ignored)
