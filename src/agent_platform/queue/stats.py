"""Queue figures read from Procrastinate's tables: the basis of metrics, health and the monitor."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_FIGURES = text(
    """
    SELECT j.queue_name,
           count(*) FILTER (WHERE j.status = 'todo'
                            AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())) AS waiting,
           count(*) FILTER (WHERE j.status = 'todo' AND j.scheduled_at > now()) AS delayed,
           count(*) FILTER (WHERE j.status = 'doing') AS active,
           count(*) FILTER (WHERE j.status = 'failed') AS failed,
           extract(epoch FROM now() - min(coalesce(j.scheduled_at, d.deferred_at))
                   FILTER (WHERE j.status = 'todo'
                           AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())))
               AS oldest_waiting_seconds
      FROM procrastinate_jobs j
      LEFT JOIN LATERAL (
            SELECT min(e.at) AS deferred_at
              FROM procrastinate_events e
             WHERE e.job_id = j.id AND e.type = 'deferred'
      ) d ON true
     WHERE j.status IN ('todo', 'doing', 'failed')
     GROUP BY j.queue_name
    """
)


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    waiting: int
    delayed: int
    active: int
    failed: int
    oldest_waiting_seconds: float


async def queue_figures(engine: AsyncEngine) -> list[QueueFigures]:
    async with engine.connect() as connection:
        rows = (await connection.execute(_FIGURES)).all()
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
