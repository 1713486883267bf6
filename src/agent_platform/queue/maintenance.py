"""Keeping the queue healthy: re-queue the jobs of dead workers, purge old succeeded jobs."""

from __future__ import annotations

import asyncio
import time

import procrastinate
import structlog

from agent_platform.ops import metrics

log = structlog.get_logger("queue.maintenance")

PURGE_INTERVAL_SECONDS = 3600.0


async def requeue_stalled_jobs(queue: procrastinate.App, *, stalled_after: float) -> int:
    """Put back to `todo` every running job whose worker stopped sending heartbeats.

    Several workers may do this at once; a job another one already re-queued is no longer
    `doing`, and Procrastinate refuses to retry it a second time, which is what we want.
    """
    requeued = 0
    stalled = await queue.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
    for job in stalled:
        try:
            await queue.job_manager.retry_job(job)
        except Exception as exc:  # raced with another worker: fine
            log.info("stalled_job_not_requeued", job_id=job.id, reason=repr(exc))
            continue
        requeued += 1
        metrics.JOBS_PROCESSED.labels(task=job.task_name, outcome="stalled").inc()
        log.warning("stalled_job_requeued", job_id=job.id, task=job.task_name)
    return requeued


async def run_maintenance(
    queue: procrastinate.App,
    *,
    stalled_after: float,
    check_every: float,
    succeeded_retention_hours: int,
) -> None:
    """Forever: check for stalled jobs every `check_every` seconds, purge once an hour."""
    last_purge = 0.0
    while True:
        try:
            await requeue_stalled_jobs(queue, stalled_after=stalled_after)
            if time.monotonic() - last_purge >= PURGE_INTERVAL_SECONDS:
                # Failed jobs are kept for inspection and `queue retry-failed`.
                await queue.job_manager.delete_old_jobs(nb_hours=succeeded_retention_hours)
                last_purge = time.monotonic()
        except Exception as exc:  # the database may be away for a while; try again later
            log.warning("queue_maintenance_failed", error=repr(exc))
        await asyncio.sleep(check_every)
