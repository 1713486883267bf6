"""Platform jobs: how they are declared, how each runs, and how one is deferred."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import procrastinate
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.db.session import raw_psycopg_connection
from agent_platform.kit.transient import is_transient
from agent_platform.ops import metrics
from agent_platform.ops.logging import current_request_id
from agent_platform.ops.sentry import report_job_failure

if TYPE_CHECKING:
    from agent_platform.services import Services


class TransientRetry(procrastinate.RetryStrategy):
    """Retry with backoff, but only failures that may pass (kit.transient): others fail at once."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.retry.RetryDecision | None:
        if not is_transient(exception):
            return None
        return super().get_retry_decision(exception=exception, job=job)


# 2, 4, 8 … 256 s between attempts: about eight and a half minutes before a job is failed.
DEFAULT_RETRY = TransientRetry(max_attempts=8, exponential_wait=2)

JobFunction = Callable[..., Coroutine[Any, Any, None]]
log = structlog.get_logger("queue")


@dataclass(frozen=True)
class JobDefinition:
    name: str
    function: JobFunction
    retry: procrastinate.RetryStrategy


# Definitions rather than Procrastinate tasks: a Procrastinate task belongs to one App, while
# one process may open several (tests; `up` runs api and worker side by side).
JOBS: dict[str, JobDefinition] = {}


def platform_job(
    name: str, *, retry: procrastinate.RetryStrategy = DEFAULT_RETRY
) -> Callable[[JobFunction], JobDefinition]:
    """Declare a job. Its function receives the process's Services and the job's arguments."""

    def declare(function: JobFunction) -> JobDefinition:
        definition = JobDefinition(name=name, function=function, retry=retry)
        JOBS[name] = definition
        return definition

    return declare


JOB_OUTCOMES = ("succeeded", "retried", "failed", "stalled")


def register_jobs(app: procrastinate.App) -> None:
    for definition in JOBS.values():
        for outcome in JOB_OUTCOMES:
            # Present at zero from the start, so that rate() and alerts see every series.
            metrics.JOBS_PROCESSED.labels(task=definition.name, outcome=outcome)
        app.task(name=definition.name, pass_context=True, retry=definition.retry)(
            _runner(definition)
        )


def _runner(definition: JobDefinition) -> Callable[..., Awaitable[None]]:
    """The wrapper every job runs in: ids bound to logs, duration and outcome in metrics.

    `request_id` (when the deferring request had one) is taken out of the job's arguments and
    bound to every log line, so a webhook can be followed into the job it caused; the job's
    start and end are logged for that trace.
    """

    async def run(context: procrastinate.JobContext, **arguments: Any) -> None:
        services: Services = context.additional_context["services"]
        job = context.job
        request_id = arguments.pop("request_id", None)
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            job_id=job.id, task=definition.name, attempt=job.attempts + 1, request_id=request_id
        ):
            log.info("job_started")
            try:
                # A task of its own (with a copy of the context): whatever the job binds to its
                # logs (organization_id, lead_id, …) ends with it.
                await asyncio.create_task(definition.function(services, **arguments))
            except Exception as exc:
                retried = definition.retry.get_retry_decision(exception=exc, job=job) is not None
                outcome = "retried" if retried else "failed"
                log.warning(f"job_{outcome}", error=repr(exc), exc_info=not retried)
                metrics.JOBS_PROCESSED.labels(task=definition.name, outcome=outcome).inc()
                if not retried:
                    report_job_failure(
                        exc,
                        job_id=job.id,
                        task=definition.name,
                        attempts=job.attempts + 1,
                        queue=job.queue,
                    )
                raise
            finally:
                elapsed = time.perf_counter() - started
                metrics.JOB_DURATION.labels(task=definition.name).observe(elapsed)
            log.info("job_succeeded", duration_ms=round(elapsed * 1000, 2))
        metrics.JOBS_PROCESSED.labels(task=definition.name, outcome="succeeded").inc()

    return run


async def defer_in_transaction(
    session: AsyncSession,
    queue: procrastinate.App,
    job: JobDefinition,
    queue_name: str,
    *,
    schedule_at: datetime | None = None,
    **arguments: Any,
) -> int:
    """Defer `job` inside `session`'s open transaction: the job exists only if that commits.

    It is due now, or at `schedule_at` (a debounce, the next opening hour)."""
    connection = await raw_psycopg_connection(session)
    request_id = current_request_id()
    if request_id:
        arguments["request_id"] = request_id
    deferrer = queue.configure_task(
        name=job.name, queue=queue_name, connection=connection, schedule_at=schedule_at
    )
    job_id: int = await deferrer.defer_async(**arguments)
    return job_id
