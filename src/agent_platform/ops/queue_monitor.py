"""Watching and tending the job queue: thresholds and status, durations, retrying failed jobs.

The figures themselves come from `queue.stats`; this module decides what they mean (ok,
warning, critical, with the exit codes monitoring systems expect) and puts failed jobs back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

import procrastinate
import psycopg
import structlog
from procrastinate import utils as procrastinate_utils
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_platform.db.session import create_engine
from agent_platform.db.urls import libpq_url
from agent_platform.queue.stats import QueueFigures

log = structlog.get_logger("queue.monitor")

# A command that only reads figures should say "unreachable" within seconds, not hang on a
# host that drops packets (libpq waits forever by default).
COMMAND_CONNECT_TIMEOUT_SECONDS = 5
# The Nagios plugin convention, which Prometheus' script exporters and most schedulers follow:
# 3 is "unknown", here: the database could not be asked (every queue command uses it).
UNREACHABLE_EXIT_CODE = 3


class QueueStatus(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def exit_code(self) -> int:
        return {QueueStatus.OK: 0, QueueStatus.WARNING: 1, QueueStatus.CRITICAL: 2}[self]


class ThresholdError(ValueError):
    """Thresholds that cannot both be met, or are not positive."""


@dataclass(frozen=True)
class Thresholds:
    """Waiting (due) jobs at which a queue is in warning, and in critical, state."""

    warning: int
    critical: int

    def __post_init__(self) -> None:
        if self.warning < 1 or self.critical < 1:
            raise ThresholdError(
                f"thresholds must be at least 1 (got --warning {self.warning}, "
                f"--critical {self.critical})"
            )
        if self.warning >= self.critical:
            raise ThresholdError(
                f"--warning ({self.warning}) must be below --critical ({self.critical})"
            )

    def status_of(self, waiting: int) -> QueueStatus:
        if waiting >= self.critical:
            return QueueStatus.CRITICAL
        if waiting >= self.warning:
            return QueueStatus.WARNING
        return QueueStatus.OK


@dataclass(frozen=True)
class QueueVerdict:
    figures: QueueFigures
    status: QueueStatus


@dataclass(frozen=True)
class MonitorReport:
    thresholds: Thresholds
    queues: list[QueueVerdict]

    @property
    def status(self) -> QueueStatus:
        """The worst queue's status: one queue in trouble is the platform in trouble."""
        order = list(QueueStatus)
        return max(
            (verdict.status for verdict in self.queues), key=order.index, default=QueueStatus.OK
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "thresholds": asdict(self.thresholds),
            "queues": [
                asdict(verdict.figures) | {"status": verdict.status.value}
                for verdict in self.queues
            ],
        }


def judge(figures: Sequence[QueueFigures], thresholds: Thresholds) -> MonitorReport:
    return MonitorReport(
        thresholds, [QueueVerdict(found, thresholds.status_of(found.waiting)) for found in figures]
    )


_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(ValueError):
    """A duration that is not written like 30m, 2h, 1d or 1h30m."""


def parse_duration(raw: str) -> timedelta:
    """`30s`, `30m`, `2h`, `1d`, or parts together (`1h30m`); more than zero."""
    spelled = raw.strip().lower()
    parts = _DURATION_PART.findall(spelled)
    if not parts or "".join(number + unit for number, unit in parts) != spelled:
        raise DurationError(
            f"{raw!r} is not a duration: write a number and a unit s, m, h or d, e.g. 30m, 2h, 1d"
        )
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds == 0:
        raise DurationError(f"{raw!r} is no time at all: give a duration above zero")
    return timedelta(seconds=seconds)


def command_engine(database_url: str) -> AsyncEngine:
    """An engine for a one-shot command: one connection, which gives up quickly."""
    url = make_url(database_url).update_query_dict(
        {"connect_timeout": str(COMMAND_CONNECT_TIMEOUT_SECONDS)}
    )
    return create_engine(url.render_as_string(hide_password=False), pool_size=1)


_FAILED_JOBS = text(
    """
    SELECT j.id
      FROM procrastinate_jobs j
     WHERE j.status = 'failed'
       AND (CAST(:task AS varchar) IS NULL OR j.task_name = :task)
       AND (CAST(:since_seconds AS float) IS NULL OR EXISTS (
             SELECT 1 FROM procrastinate_events e
              WHERE e.job_id = j.id AND e.type = 'failed'
                AND e.at >= now() - make_interval(secs => :since_seconds)))
     ORDER BY j.id
    """
)


@dataclass(frozen=True)
class RetryOutcome:
    retried: int
    # Failed jobs someone else (another operator, a second run) put back first.
    skipped: int


async def retry_failed_jobs(
    engine: AsyncEngine,
    database_url: str,
    *,
    task: str | None = None,
    failed_within: timedelta | None = None,
) -> RetryOutcome:
    """Put failed jobs back in the queue, due now, through Procrastinate's own retry.

    Procrastinate counts the retry as an attempt: the count stays true in logs and metrics,
    and a job that had used up its automatic retries runs once more instead of starting
    another round of back-off against something that may still be broken.
    """
    since_seconds = None if failed_within is None else failed_within.total_seconds()
    async with engine.connect() as connection:
        ids = (
            await connection.scalars(_FAILED_JOBS, {"task": task, "since_seconds": since_seconds})
        ).all()
    # A bare App: retrying needs Procrastinate's job manager, not the platform's tasks
    # (create_queue_app imports every job module, which takes seconds).
    queue = procrastinate.App(
        connector=procrastinate.PsycopgConnector(
            conninfo=libpq_url(database_url),
            kwargs={"connect_timeout": COMMAND_CONNECT_TIMEOUT_SECONDS},
            min_size=1,
            max_size=1,
        )
    )
    async with queue.open_async():
        retried = sum([await _retry(queue, job_id) for job_id in ids])
    log.info("failed_jobs_retried", retried=retried, task=task, since_seconds=since_seconds)
    return RetryOutcome(retried=retried, skipped=len(ids) - retried)


async def _retry(queue: procrastinate.App, job_id: int) -> bool:
    """Put one failed job back, due now; False when it was no longer failed."""
    try:
        await queue.job_manager.retry_job_by_id_async(job_id, retry_at=procrastinate_utils.utcnow())
    except procrastinate.exceptions.ConnectorException as exc:
        # Procrastinate's retry function raises when the job is no longer failed (put
        # back or deleted meanwhile); any other database error stops the command.
        if not isinstance(exc.__cause__, psycopg.errors.RaiseException):
            raise
        log.info("failed_job_not_retried", job_id=job_id, reason=str(exc.__cause__))
        return False
    return True
