"""Writing automation runs: recorded once per (trigger or step, event), results as they come.

A run is recorded with the status it starts in; `finish_run` ends it. Metrics count a run
when it reaches a final status (skipped, succeeded, failed), whichever of the two got it there.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.events import AutomationEvent
from agent_platform.automation.models import AutomationRun, RunKind, RunStatus
from agent_platform.ops import metrics

FINAL_STATUSES = frozenset({RunStatus.SKIPPED, RunStatus.SUCCEEDED, RunStatus.FAILED})


async def record_run(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    kind: RunKind,
    event: AutomationEvent,
    matched: bool,
    trace: dict[str, Any] | None,
    actions: list[dict[str, Any]],
    status: RunStatus,
    error: str | None = None,
    trigger_id: uuid.UUID | None = None,
    sequence_id: uuid.UUID | None = None,
    enrollment_id: uuid.UUID | None = None,
    rule_id: uuid.UUID | None = None,
    dedupe_key: str | None = None,
) -> AutomationRun | None:
    """The new run; None when a run with `dedupe_key` was recorded before (a retried job)."""
    final = status in FINAL_STATUSES
    now = datetime.now(UTC)
    statement = (
        insert(AutomationRun)
        .values(
            id=uuid.uuid4(),
            organization_id=organization_id,
            kind=kind.value,
            trigger_id=trigger_id,
            sequence_id=sequence_id,
            enrollment_id=enrollment_id,
            rule_id=rule_id,
            connection_id=event.connection_id,
            lead_id=event.lead_id,
            event_type=event.type.value,
            event=event.to_json(),
            matched=matched,
            trace=trace,
            actions=actions,
            results=[],
            next_action=0,
            status=status.value,
            error=error,
            chain_depth=event.origin.depth,
            dedupe_key=dedupe_key,
            finished_at=now if final else None,
            duration_ms=0 if final else None,
        )
        .on_conflict_do_nothing(index_elements=[AutomationRun.dedupe_key])
        .returning(AutomationRun)
    )
    run = (await session.scalars(statement)).one_or_none()
    if run is not None and final:
        _count(kind.value, status, 0.0)
    return run


async def get_run(
    session: AsyncSession, run_id: uuid.UUID, *, for_update: bool = False
) -> AutomationRun | None:
    statement = select(AutomationRun).where(AutomationRun.id == run_id)
    if for_update:
        statement = statement.with_for_update()
    run: AutomationRun | None = (await session.scalars(statement)).one_or_none()
    return run


async def record_action_result(
    session: AsyncSession, run: AutomationRun, result: dict[str, Any]
) -> None:
    """Append one action's result and move on to the next action."""
    run.results = [*run.results, result]
    run.next_action = run.next_action + 1
    await session.flush()


async def finish_run(
    session: AsyncSession, run: AutomationRun, status: RunStatus, error: str | None = None
) -> None:
    now = datetime.now(UTC)
    duration = max(0.0, (now - run.created_at).total_seconds())
    run.status = status.value
    run.error = error
    run.resume_at = None
    run.finished_at = now
    run.duration_ms = round(duration * 1000)
    await session.flush()
    if status in FINAL_STATUSES:
        _count(run.kind, status, duration)


async def wait_run(session: AsyncSession, run: AutomationRun, resume_at: datetime) -> None:
    """Hold the run's remaining actions until `resume_at` (a `wait` action)."""
    run.status = RunStatus.WAITING.value
    run.resume_at = resume_at
    await session.flush()


async def counted_runs_since(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    trigger_id: uuid.UUID,
    connection_id: uuid.UUID | None,
    lead_id: int,
    since: datetime,
) -> int:
    """How many runs of the trigger for the lead since `since` count against its cap: every
    one that was not skipped."""
    count = await session.scalar(
        select(func.count())
        .select_from(AutomationRun)
        .where(
            AutomationRun.organization_id == organization_id,
            AutomationRun.trigger_id == trigger_id,
            AutomationRun.connection_id == connection_id,
            AutomationRun.lead_id == lead_id,
            AutomationRun.created_at >= since,
            AutomationRun.status != RunStatus.SKIPPED.value,
        )
    )
    return int(count or 0)


async def delete_runs_before(session: AsyncSession, cutoff: datetime) -> int:
    """Retention, across organizations: the clock's job, not a tenant's request."""
    result = await session.execute(delete(AutomationRun).where(AutomationRun.created_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _count(kind: str, status: RunStatus, duration_seconds: float) -> None:
    metrics.AUTOMATION_RUNS.labels(kind=kind, status=status.value).inc()
    metrics.AUTOMATION_RUN_DURATION.labels(kind=kind).observe(duration_seconds)
