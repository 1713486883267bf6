"""Queue figures read from Procrastinate's tables: the basis of metrics, health and the monitor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_OPEN_STATES = "('todo', 'doing', 'failed')"
# Every queue asked about is reported, with zeros when it is empty, and so is every other
# queue that holds jobs: an idle queue must read 0, not "no data".
_FIGURES = text(
    f"""
    SELECT q.queue_name,
           count(j.id) FILTER (WHERE j.status = 'todo'
                               AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())) AS waiting,
           count(j.id) FILTER (WHERE j.status = 'todo' AND j.scheduled_at > now()) AS delayed,
           count(j.id) FILTER (WHERE j.status = 'doing') AS active,
           count(j.id) FILTER (WHERE j.status = 'failed') AS failed,
           extract(epoch FROM now() - min(coalesce(j.scheduled_at, d.deferred_at))
                   FILTER (WHERE j.status = 'todo'
                           AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())))
               AS oldest_waiting_seconds
      FROM (SELECT unnest(CAST(:queues AS varchar[]))
             UNION
            SELECT DISTINCT queue_name FROM procrastinate_jobs WHERE status IN {_OPEN_STATES}
           ) AS q(queue_name)
      LEFT JOIN procrastinate_jobs j
             ON j.queue_name = q.queue_name AND j.status IN {_OPEN_STATES}
      LEFT JOIN LATERAL (
            SELECT min(e.at) AS deferred_at
              FROM procrastinate_events e
             WHERE e.job_id = j.id AND e.type = 'deferred'
      ) d ON true
     GROUP BY q.queue_name
     ORDER BY q.queue_name
    """  # noqa: S608 - a constant, no input
)


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    waiting: int
    delayed: int
    active: int
    failed: int
    oldest_waiting_seconds: float


async def queue_figures(engine: AsyncEngine, queues: Sequence[str]) -> list[QueueFigures]:
    async with engine.connect() as connection:
        rows = (await connection.execute(_FIGURES, {"queues": list(queues)})).all()
    return [
        QueueFigures(
            queue=row.queue_name,
            waiting=row.waiting,
            delayed=row.delayed,
            active=row.active,
            failed=row.failed,
            oldest_waiting_seconds=float(row.oldest_waiting_seconds or 0.0),
        )
        for row in rows
    ]


# Jobs with any event in the window (deferred, started, retried, finished), by their current
# status. Succeeded jobs are purged after SUCCEEDED_JOB_RETENTION_HOURS (at least 1 h), so a
# window longer than that undercounts them.
_JOBS_BY_TASK = text(
    """
    SELECT j.task_name, j.status::text AS status, count(*) AS jobs
      FROM procrastinate_jobs j
     WHERE EXISTS (SELECT 1 FROM procrastinate_events e
                    WHERE e.job_id = j.id AND e.at >= now() - make_interval(secs => :seconds))
     GROUP BY j.task_name, j.status
     ORDER BY j.task_name, j.status
    """
)


@dataclass(frozen=True)
class TaskFigures:
    task: str
    status: str
    jobs: int


async def jobs_by_task(engine: AsyncEngine, within: timedelta) -> list[TaskFigures]:
    """How many jobs of each task, in each status, were active within `within`."""
    async with engine.connect() as connection:
        rows = (await connection.execute(_JOBS_BY_TASK, {"seconds": within.total_seconds()})).all()
    return [TaskFigures(task=row.task_name, status=row.status, jobs=row.jobs) for row in rows]
