"""The worker's own backups: on BACKUP_SCHEDULE (cron, UTC), then pruned by BACKUP_KEEP_*.

Every minute each worker looks for the schedule's newest slot. A slot at most CATCH_UP old
gets one `backup_database` job: a worker that was down at 02:00 and back at 09:00 takes the
02:00 backup then, once; older slots are not looked for. "Once" holds across workers and
restarts: the check and the defer run under an advisory lock, a job that names the slot
means it is taken, and the queueing lock keeps a second backup job from waiting beside one
that has not started. The job itself skips a slot a newer backup already covers.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import procrastinate
import structlog
from croniter import croniter  # type: ignore[import-untyped]
from sqlalchemy import func, select, text

from agent_platform.db.session import raw_psycopg_connection, transaction
from agent_platform.kit.failures import StartupRefusedError
from agent_platform.ops.backups.create import create_backup
from agent_platform.ops.backups.prune import prune_backups
from agent_platform.ops.backups.storage import list_backups
from agent_platform.queue.registry import platform_job
from agent_platform.services import Services

BACKUP_JOB = "backup_database"
# The advisory lock of the backup clock (an arbitrary number, the same in every worker).
BACKUP_CLOCK_LOCK_ID = 5_120_611_005
CHECK_EVERY_SECONDS = 60.0
CATCH_UP = timedelta(hours=24)
_SLOT_TAKEN = text(
    "SELECT EXISTS (SELECT FROM procrastinate_jobs "
    "WHERE task_name = :task AND args->>'slot' = :slot)"
)

log = structlog.get_logger("backups.schedule")


def check_backup_schedule(schedule: str | None) -> None:
    """Refuse to start a worker on a BACKUP_SCHEDULE that is not a cron expression."""
    if schedule is not None and not croniter.is_valid(schedule):
        raise StartupRefusedError(
            f"BACKUP_SCHEDULE {schedule!r} is not a cron expression "
            "(five fields, UTC, e.g. '30 2 * * *' for 02:30 every day)"
        )


def due_slot(schedule: str, now: datetime) -> datetime | None:
    """The schedule's newest time up to `now`, when it is at most CATCH_UP ago."""
    minute = now.astimezone(UTC).replace(second=0, microsecond=0)
    slot: datetime = croniter(schedule, minute + timedelta(minutes=1)).get_prev(datetime)
    return slot if now - slot <= CATCH_UP else None


async def defer_due_backup(services: Services, now: datetime) -> int | None:
    """Defer the backup of the slot due at `now` unless it is taken; the job's id, if deferred."""
    schedule = services.settings.backup_schedule
    slot = due_slot(schedule, now) if schedule else None
    if slot is None:
        return None
    async with transaction(services.sessions) as session:
        if not await session.scalar(select(func.pg_try_advisory_xact_lock(BACKUP_CLOCK_LOCK_ID))):
            return None  # another worker is looking
        if await session.scalar(_SLOT_TAKEN, {"task": BACKUP_JOB, "slot": slot.isoformat()}):
            return None
        deferrer = services.queue.configure_task(
            name=BACKUP_JOB,
            queue=services.settings.job_queue_name,
            connection=await raw_psycopg_connection(session),
            queueing_lock=BACKUP_JOB,
        )
        try:
            async with session.begin_nested():
                job_id: int = await deferrer.defer_async(slot=slot.isoformat())
        except procrastinate.exceptions.AlreadyEnqueued:
            log.warning("backup_still_waiting", slot=slot.isoformat())
            return None
    log.info("backup_deferred", slot=slot.isoformat(), job_id=job_id)
    return job_id


async def run_backup_clock(services: Services, *, every: float = CHECK_EVERY_SECONDS) -> None:
    """Forever, when BACKUP_SCHEDULE is set: defer the due backup every `every` seconds."""
    if not services.settings.backup_schedule:
        return
    while True:
        try:
            await defer_due_backup(services, datetime.now(UTC))
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("backup_clock_failed", error=repr(exc))
        await asyncio.sleep(every)


@platform_job(BACKUP_JOB)
async def backup_database(services: Services, slot: str) -> None:
    """Back up the worker's database into BACKUP_DIR, then prune by BACKUP_KEEP_*."""
    settings = services.settings
    directory = settings.backup_directory
    newest = await asyncio.to_thread(list_backups, directory)
    if newest and newest[0].created_at >= datetime.fromisoformat(slot):
        log.info("backup_already_taken", slot=slot, backup_id=newest[0].id)
        return
    key = settings.backup_encryption_key
    # pg_dump and the file work block: a thread, so the worker's other jobs go on meanwhile.
    manifest = await asyncio.to_thread(
        create_backup,
        services.engine.url.render_as_string(hide_password=False),
        directory,
        encryption_key=key.get_secret_value() if key else None,
    )
    pruned = await asyncio.to_thread(
        prune_backups,
        directory,
        keep_daily=settings.backup_keep_daily,
        keep_weekly=settings.backup_keep_weekly,
        keep_monthly=settings.backup_keep_monthly,
    )
    log.info(
        "backup_taken",
        slot=slot,
        backup_id=manifest.id,
        size_bytes=manifest.size_bytes,
        seconds=manifest.seconds,
        pruned=pruned.removed,
    )
