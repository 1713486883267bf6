"""Accepting Kommo webhooks: every event into the inbox, a job for those we act on, atomically.

The request owns one transaction: the new events go in with one INSERT, their jobs are
deferred in the same transaction, so Kommo's 2-second limit is met and nothing is half done.

Which events get a job: a customer's message with text is answered (`answer_incoming_message`)
unless the connection answers through its Salesbot, whose widget_request is answered instead
(answering both would answer twice); a task's change is mirrored into `crm_tasks`
(`mirror_kommo_task`); an outgoing chat message is recorded as a manager's, which pauses the
agent (`record_manager_message`). Everything else is stored `ignored`; unknown events are kept
as they came. Besides, lead changes and chat messages go to automation when anything there
waits for them (automation.dispatch.defer_for_webhook: one query, one job per webhook).
"""

from __future__ import annotations

from dataclasses import dataclass

import procrastinate
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.tasks import answer_incoming_message, record_manager_message_job
from agent_platform.automation.dispatch import defer_for_webhook
from agent_platform.crm import repository
from agent_platform.crm.kommo.webhooks import (
    EventFamily,
    KommoEvent,
    KommoWebhook,
    SalesbotRequest,
    message_json,
)
from agent_platform.crm.models import InboxStatus, ReplyChannel
from agent_platform.crm.records.tasks import mirror_kommo_task
from agent_platform.crm.repository import NewInboxEvent, WebhookTarget
from agent_platform.kit.errors import NotFoundError
from agent_platform.ops import metrics
from agent_platform.queue.registry import JobDefinition, defer_in_transaction

SOURCE = "kommo"
log = structlog.get_logger("kommo.webhooks")


@dataclass(frozen=True)
class WebhookReceipt:
    accepted: int  # stored, with a job deferred
    duplicates: int  # received before: nothing done
    ignored: int  # stored without a job (see the module's docstring)


async def accept_webhook(
    session: AsyncSession,
    queue: procrastinate.App,
    queue_name: str,
    *,
    connection_token: str,
    webhook: KommoWebhook,
) -> WebhookReceipt:
    target = await _target(session, connection_token)
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    unique = {event.dedupe_key: event for event in webhook.events}
    jobs = {key: _job_for(event, target) for key, event in unique.items()}
    new_events = [
        NewInboxEvent(
            dedupe_key=key,
            payload=event.to_payload(),
            status=InboxStatus.IGNORED if jobs[key] is None else InboxStatus.PENDING,
        )
        for key, event in unique.items()
    ]
    stored = await repository.insert_inbox_events(
        session, target=target, source=SOURCE, events=new_events, request_id=request_id
    )
    accepted = ignored = 0
    for new_event in new_events:
        event_id = stored.get(new_event.dedupe_key)
        if event_id is None:
            continue
        job = jobs[new_event.dedupe_key]
        if job is None:
            ignored += 1
            continue
        await defer_in_transaction(session, queue, job, queue_name, inbox_event_id=str(event_id))
        accepted += 1
    await defer_for_webhook(
        session,
        queue,
        queue_name,
        organization_id=target.organization_id,
        connection_id=target.connection_id,
        events=[(stored[key], event) for key, event in unique.items() if key in stored],
    )
    receipt = WebhookReceipt(
        accepted=accepted, duplicates=len(webhook.events) - accepted - ignored, ignored=ignored
    )
    _count(receipt)
    log.info(
        "webhook_received",
        events=[f"{event.section}[{event.action}]" for event in unique.values()][:20],
        accepted=receipt.accepted,
        duplicates=receipt.duplicates,
        ignored=receipt.ignored,
    )
    return receipt


async def accept_salesbot_request(
    session: AsyncSession,
    queue: procrastinate.App,
    queue_name: str,
    *,
    connection_token: str,
    request: SalesbotRequest,
) -> WebhookReceipt:
    """Store a widget_request and defer its answer; the bot waits for our continue."""
    target = await _target(session, connection_token)
    event_id = await repository.insert_inbox_event_if_new(
        session,
        target=target,
        source=SOURCE,
        dedupe_key=request.dedupe_key,
        payload={
            "section": "salesbot",
            "action": "widget_request",
            "message": message_json(request.message),
            "salesbot": {"bot_id": request.bot_id, "continue_id": request.continue_id},
            "data": request.data,
        },
        request_id=structlog.contextvars.get_contextvars().get("request_id"),
    )
    if event_id is not None:
        await defer_in_transaction(
            session, queue, answer_incoming_message, queue_name, inbox_event_id=str(event_id)
        )
    receipt = WebhookReceipt(
        accepted=int(event_id is not None), duplicates=int(event_id is None), ignored=0
    )
    _count(receipt)
    log.info(
        "salesbot_request_received",
        bot_id=request.bot_id,
        continue_id=request.continue_id,
        duplicate=event_id is None,
    )
    return receipt


async def _target(session: AsyncSession, connection_token: str) -> WebhookTarget:
    target = await repository.webhook_target(session, connection_token)
    if target is None:
        metrics.WEBHOOKS_RECEIVED.labels(source=SOURCE, result="unknown_token").inc()
        raise NotFoundError("No connection has this webhook address.")
    structlog.contextvars.bind_contextvars(organization_id=str(target.organization_id))
    return target


def _job_for(event: KommoEvent, target: WebhookTarget) -> JobDefinition | None:
    """The job that acts on the event, or None when it is only kept."""
    if _is_answered(event, target):
        return answer_incoming_message
    if _is_manager_message(event):
        return record_manager_message_job
    if event.family is EventFamily.TASKS and event.is_known:
        return mirror_kommo_task
    return None


def _is_answered(event: KommoEvent, target: WebhookTarget) -> bool:
    message = event.message
    return (
        message is not None
        and message.is_from_customer
        and bool(message.text.strip())
        and target.reply_channel != ReplyChannel.SALESBOT.value
    )


def _is_manager_message(event: KommoEvent) -> bool:
    """An outgoing chat message: a manager's, or our own reply echoed (the job tells which)."""
    message = event.message
    return message is not None and not message.is_from_customer and bool(message.text.strip())


def _count(receipt: WebhookReceipt) -> None:
    for result, count in (
        ("accepted", receipt.accepted),
        ("duplicate", receipt.duplicates),
        ("ignored", receipt.ignored),
    ):
        if count:
            metrics.WEBHOOKS_RECEIVED.labels(source=SOURCE, result=result).inc(count)
