"""Mirroring the tasks Kommo tells us about (`task[add|update|responsible|delete]` webhooks).

The webhook request only stores the event in the inbox and defers the job; the job applies it
to `crm_tasks` and finishes the event in one transaction, so a retried job, or Kommo sending
the same webhook again (the inbox keeps it once), changes nothing. Kommo does not promise
order: news older than the row's last change from Kommo is not applied.

A webhook's item is Kommo's v2 shape, every value a string: `id`, `element_type`/`element_id`
(already read into the event's entity), `text`, `status` (1 done, 0 to do), `complete_till`,
`task_type`, `responsible_user_id`, `last_modified`, and `result[text]` once completed.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog

from agent_platform.crm import repository as crm
from agent_platform.crm.models import InboxEvent, InboxStatus, TaskStatus
from agent_platform.crm.records import repository
from agent_platform.crm.records.automation_events import tell_automation
from agent_platform.crm.records.repository import KommoTaskState
from agent_platform.crm.records.schemas import MAX_BIGINT, MAX_INTEGER
from agent_platform.db.session import transaction
from agent_platform.services import Services

log = structlog.get_logger("crm.records.mirror")

# The last second of year 9999: the end of what a datetime holds.
MAX_UNIX_SECONDS = 253_402_300_799


async def mirror_task_event(services: Services, inbox_event_id: uuid.UUID) -> None:
    async with transaction(services.sessions) as session:
        event = await crm.get_inbox_event(session, inbox_event_id)
        if event is None or event.status != InboxStatus.PENDING.value:
            log.info("inbox_event_skipped", reason="missing or already handled")
            return
        structlog.contextvars.bind_contextvars(organization_id=str(event.organization_id))
        state = _task_state(event)
        if state is None:
            await crm.finish_inbox_event(
                session, event.id, InboxStatus.IGNORED, "the task event names no task id"
            )
            return
        if event.payload["action"] == "delete":
            await repository.mark_kommo_task_deleted(session, state.connection_id, state.kommo_id)
        else:
            created = await repository.upsert_kommo_task(session, state)
            if created is not None:
                await tell_automation(session, services, created.organization_id, task=created)
        await crm.finish_inbox_event(session, event.id, InboxStatus.HANDLED)
    log.info("kommo_task_mirrored", kommo_id=state.kommo_id, action=event.payload["action"])


def _task_state(event: InboxEvent) -> KommoTaskState | None:
    payload = event.payload
    kommo_id = _number(payload.get("item_id"))
    if kommo_id is None:
        return None
    item: dict[str, Any] = payload.get("data") or {}
    fields: dict[str, Any] = {}
    entity_id = payload.get("entity_id")
    if isinstance(entity_id, int) and entity_id <= MAX_BIGINT:
        fields |= {"entity_type": payload["entity_type"], "entity_id": entity_id}
    if isinstance(item.get("text"), str):
        fields["text"] = item["text"]
    if (task_type_id := _number(item.get("task_type"), limit=MAX_INTEGER)) is not None:
        fields["task_type_id"] = task_type_id
    if (responsible_user_id := _number(item.get("responsible_user_id"))) is not None:
        fields["responsible_user_id"] = responsible_user_id
    if (deadline := _time(item.get("complete_till"))) is not None:
        fields["complete_till"] = deadline
    changed_at = _time(item.get("last_modified"))
    if item.get("status") in ("0", "1"):
        completed = item["status"] == "1"
        fields["status"] = (TaskStatus.COMPLETED if completed else TaskStatus.OPEN).value
        fields["completed_at"] = (changed_at or datetime.now(UTC)) if completed else None
    result = item.get("result")
    if isinstance(result, dict) and isinstance(result.get("text"), str):
        fields["result_text"] = result["text"]
    return KommoTaskState(
        organization_id=event.organization_id,
        connection_id=event.connection_id,
        kommo_id=kommo_id,
        fields=fields,
        changed_at=changed_at,
    )


def _number(value: Any, limit: int = MAX_BIGINT) -> int | None:
    """Kommo's ids and times come as digit strings in webhooks; a number too large for its
    column is no Kommo value, and is dropped rather than failing the job."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
        return number if number <= limit else None
    return None


def _time(value: Any) -> datetime | None:
    seconds = _number(value, limit=MAX_UNIX_SECONDS)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)
