"""The clock: what happens because time passed, checked once a minute.

- lead_silent / manager_silent triggers: conversations whose newest message is ours (or a
  manager's) / the lead's, older than the trigger's `after_minutes`: once per silence (the
  run's key holds the time of the message the silence started with);
- task_overdue triggers: open tasks on leads whose due time has passed: once per due time;
- schedule triggers: their cron expression's newest time in the organization's zone, when it
  is at most SCHEDULE_CATCH_UP ago (once per time);
- retention: runs older than AUTOMATION_RUN_RETENTION_DAYS, expired echoes.

Each firing is a dispatch of one event for one trigger (dispatch.defer_dispatch), deferred
only when the trigger has no run for that event yet; the run's unique key makes a second
dispatch of the same event do nothing. Happenings older than CATCH_UP are not looked for: a
worker that was down for a day does not fire a day's worth of old news.

`tick(services, now)` is the whole of it, for a chosen `now` (tests control the clock that
way). The worker runs it every minute in a loop beside queue maintenance (`run_clock`), not
as a queue job: a test's `run_queued_jobs` never meets it, and the queue holds only real
work. A transaction-level advisory lock lets one worker tick at a time; the others skip.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.clock import zone_named
from agent_platform.automation.dispatch import defer_dispatch, run_dedupe_key
from agent_platform.automation.echoes import delete_expired_echoes
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.models import AutomationRun, Trigger
from agent_platform.automation.runs.repository import delete_runs_before
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmTask, TaskStatus
from agent_platform.db.session import transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services

CLOCK_INTERVAL_SECONDS = 60.0
# The advisory lock of the tick (an arbitrary number, the same in every worker).
CLOCK_LOCK_ID = 5_120_611_004
CATCH_UP = timedelta(days=1)
# A schedule's time is still fired this long after it (a late tick), never later.
SCHEDULE_CATCH_UP = timedelta(minutes=10)
# The roles whose messages start or end a silence (system and tool messages do neither).
_SPEAKERS = ("user", "assistant", "manager")
# Whose newest message makes a silence of each kind.
_SILENT_AFTER = {
    EventType.LEAD_SILENT: frozenset({"assistant", "manager"}),
    EventType.MANAGER_SILENT: frozenset({"user"}),
}

log = structlog.get_logger("automation.tick")


@dataclass(frozen=True)
class _Firing:
    trigger: Trigger
    event: AutomationEvent


async def tick(services: Services, now: datetime) -> int:
    """Fire what is due at `now` and apply retention; how many dispatches were deferred."""
    async with transaction(services.sessions) as session:
        if not await session.scalar(select(func.pg_try_advisory_xact_lock(CLOCK_LOCK_ID))):
            return 0  # another worker is ticking
        triggers = await _clock_triggers(session)
        firings: list[_Firing] = []
        for kind in _SILENT_AFTER:
            firings += await _silences(session, triggers.get(kind, []), kind, now)
        firings += await _overdue_tasks(session, triggers.get(EventType.TASK_OVERDUE, []), now)
        firings += await _schedules(session, triggers.get(EventType.SCHEDULE, []), now)
        fired = 0
        for firing in await _not_fired_yet(session, firings):
            await defer_dispatch(
                session,
                services,
                firing.trigger.organization_id,
                firing.event,
                only_trigger_id=firing.trigger.id,
            )
            fired += 1
        retention = timedelta(days=services.settings.automation_run_retention_days)
        deleted_runs = await delete_runs_before(session, now - retention)
        deleted_echoes = await delete_expired_echoes(session, now)
    if fired or deleted_runs or deleted_echoes:
        log.info(
            "automation_tick",
            fired=fired,
            deleted_runs=deleted_runs,
            deleted_echoes=deleted_echoes,
        )
    return fired


async def run_clock(services: Services, *, every: float = CLOCK_INTERVAL_SECONDS) -> None:
    """Forever: tick every `every` seconds."""
    while True:
        try:
            await tick(services, datetime.now(UTC))
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("automation_tick_failed", error=repr(exc))
        await asyncio.sleep(every)


# --- what is due -----------------------------------------------------------------------------


async def _clock_triggers(session: AsyncSession) -> dict[EventType, list[Trigger]]:
    """Every enabled trigger the clock fires, across organizations, by event type."""
    rows = await session.scalars(
        select(Trigger).where(
            Trigger.enabled.is_(True),
            Trigger.event_type.in_(
                [
                    kind.value
                    for kind in (*_SILENT_AFTER, EventType.TASK_OVERDUE, EventType.SCHEDULE)
                ]
            ),
        )
    )
    by_type: dict[EventType, list[Trigger]] = defaultdict(list)
    for trigger in rows:
        by_type[EventType(trigger.event_type)].append(trigger)
    return by_type


async def _silences(
    session: AsyncSession, triggers: list[Trigger], kind: EventType, now: datetime
) -> list[_Firing]:
    firings = []
    for trigger in triggers:
        after = trigger.event.get("after_minutes")
        if not isinstance(after, int) or after < 1:
            continue
        silent_since = now - timedelta(minutes=after)
        for conversation, role, at in await _newest_messages(
            session, trigger.organization_id, since=silent_since - CATCH_UP
        ):
            if role not in _SILENT_AFTER[kind] or at > silent_since:
                continue
            assert conversation.connection_id is not None
            event = AutomationEvent(
                type=kind,
                occurred_at=now,
                connection_id=conversation.connection_id,
                lead_id=conversation.entity_id,
                data={"minutes": int((now - at) / timedelta(minutes=1))},
                contact=None
                if conversation.contact_id is None
                else {"id": conversation.contact_id},
                key=f"{kind.value}:{conversation.id}:{at.isoformat()}",
            )
            firings.append(_Firing(trigger, event))
    return firings


async def _newest_messages(
    session: AsyncSession, organization_id: uuid.UUID, *, since: datetime
) -> list[tuple[Conversation, str, datetime]]:
    """The organization's Kommo lead conversations active since `since`, each with the role and
    time of its newest message."""
    newest = (
        select(Message.conversation_id, Message.role, Message.created_at)
        .where(Message.organization_id == organization_id, Message.role.in_(_SPEAKERS))
        .ext(distinct_on(Message.conversation_id))
        .order_by(Message.conversation_id, Message.created_at.desc())
        .subquery()
    )
    rows = await session.execute(
        select(Conversation, newest.c.role, newest.c.created_at)
        .join(newest, newest.c.conversation_id == Conversation.id)
        .where(
            Conversation.organization_id == organization_id,
            Conversation.connection_id.is_not(None),
            Conversation.entity_type == "leads",
            Conversation.last_message_at >= since,
            newest.c.created_at >= since,
        )
    )
    return [(conversation, role, at) for conversation, role, at in rows]


async def _overdue_tasks(
    session: AsyncSession, triggers: list[Trigger], now: datetime
) -> list[_Firing]:
    by_organization: dict[uuid.UUID, list[Trigger]] = defaultdict(list)
    for trigger in triggers:
        by_organization[trigger.organization_id].append(trigger)
    if not by_organization:
        return []
    tasks = await session.scalars(
        select(CrmTask).where(
            CrmTask.organization_id.in_(list(by_organization)),
            CrmTask.status == TaskStatus.OPEN.value,
            CrmTask.entity_type == "leads",
            CrmTask.entity_id.is_not(None),
            CrmTask.complete_till <= now,
            CrmTask.complete_till > now - CATCH_UP,
        )
    )
    firings = []
    for task in tasks:
        assert task.complete_till is not None
        event = AutomationEvent(
            type=EventType.TASK_OVERDUE,
            occurred_at=now,
            connection_id=task.connection_id,
            lead_id=task.entity_id,
            data={
                "task_id": str(task.id),
                "text": task.text,
                "due_at": task.complete_till.isoformat(),
            },
            key=f"task_overdue:{task.id}:{int(task.complete_till.timestamp())}",
        )
        firings += [_Firing(trigger, event) for trigger in by_organization[task.organization_id]]
    return firings


async def _schedules(
    session: AsyncSession, triggers: list[Trigger], now: datetime
) -> list[_Firing]:
    if not triggers:
        return []
    rows = await session.execute(
        select(Organization.id, Organization.timezone).where(
            Organization.id.in_({trigger.organization_id for trigger in triggers})
        )
    )
    zones = {row.id: row.timezone for row in rows}
    firings = []
    for trigger in triggers:
        cron = trigger.event.get("cron")
        if not isinstance(cron, str):
            continue
        local = now.astimezone(zone_named(zones.get(trigger.organization_id)))
        # The schedule's newest time up to this minute: a tick that came late (a busy worker,
        # the minute loop drifting) still fires it; its key keeps it from firing twice.
        due = croniter(cron, local.replace(second=0, microsecond=0) + timedelta(minutes=1))
        minute: datetime = due.get_prev(datetime)
        if now - minute > SCHEDULE_CATCH_UP:
            continue
        event = AutomationEvent(
            type=EventType.SCHEDULE,
            occurred_at=now,
            data={"cron": cron},
            key=f"schedule:{minute.astimezone(UTC).isoformat()}",
        )
        firings.append(_Firing(trigger, event))
    return firings


async def _not_fired_yet(session: AsyncSession, firings: Iterable[_Firing]) -> list[_Firing]:
    """The firings whose trigger has no run for their event yet."""
    keyed = {run_dedupe_key(f.trigger.id, f.event): f for f in firings}
    if not keyed:
        return []
    recorded = set(
        await session.scalars(
            select(AutomationRun.dedupe_key).where(AutomationRun.dedupe_key.in_(list(keyed)))
        )
    )
    return [firing for key, firing in keyed.items() if key not in recorded]
