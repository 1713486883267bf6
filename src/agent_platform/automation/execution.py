"""Performing a trigger run's actions, one by one, each result recorded as soon as it is known.

The actions are performed outside any transaction (they call Kommo, the LLM, outside
webhooks); each result is written in a transaction of its own with the run locked, so a
retried job resumes at the first action not recorded (the executor's idempotency keys,
`automation:<run id>:<index>`, cover an action performed but not yet recorded). A `wait`
holds the rest: the run is `waiting` and this job is deferred again at `resume_at`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation import executor
from agent_platform.automation.actions import Action
from agent_platform.automation.clock import organization_zone
from agent_platform.automation.events import AutomationEvent
from agent_platform.automation.facts import facts_for
from agent_platform.automation.models import AutomationRun, RunStatus
from agent_platform.automation.runs.repository import (
    finish_run,
    get_run,
    record_action_result,
    wait_run,
)
from agent_platform.db.session import transaction
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services

RUN_ACTIONS_JOB = "run_automation_actions"

_ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])
log = structlog.get_logger("automation.execution")


async def defer_run(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    run_id: uuid.UUID,
    *,
    at: datetime | None = None,
) -> int:
    """Defer the performing of the run's actions (now, or at `at`) in the open transaction."""
    return await defer_in_transaction(
        session,
        services.queue,
        run_automation_actions,
        services.settings.job_queue_name,
        schedule_at=at,
        organization_id=str(organization_id),
        run_id=str(run_id),
    )


@platform_job(RUN_ACTIONS_JOB)
async def run_automation_actions(services: Services, *, organization_id: str, run_id: str) -> None:
    await execute_run(services, uuid.UUID(organization_id), uuid.UUID(run_id))


async def execute_run(
    services: Services, organization_id: uuid.UUID, run_id: uuid.UUID
) -> RunStatus:
    """Perform the run's actions from `next_action` on; the run's status afterwards."""
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        run = await _locked_run(session, organization_id, run_id)
        if run is None:
            return RunStatus.SKIPPED
        if run.status == RunStatus.WAITING.value and run.resume_at is not None:
            if run.resume_at > now:
                return RunStatus.WAITING
            run.status = RunStatus.RUNNING.value
            run.resume_at = None
        if run.status != RunStatus.RUNNING.value:
            return RunStatus(run.status)
        stored = list(run.actions)
        start = run.next_action
        event = AutomationEvent.from_json(run.event)
        origin = event.origin if run.trigger_id is None else event.origin.after(run.trigger_id)
        zone = await organization_zone(session, organization_id)
    structlog.contextvars.bind_contextvars(
        organization_id=str(organization_id), lead_id=event.lead_id, run_id=str(run_id)
    )
    actions = _ACTIONS.validate_python(stored)
    facts = facts_for(event, zone=zone, now=now).current
    for index in range(start, len(actions)):
        outcome = await executor.perform(
            actions[index],
            executor.ActionContext(
                services=services,
                organization_id=organization_id,
                connection_id=event.connection_id,
                lead_id=event.lead_id,
                facts=facts,
                run_id=run_id,
                index=index,
                origin=origin,
            ),
        )
        status = await _record_outcome(
            services, organization_id, run_id, index, stored[index], outcome
        )
        if status is not RunStatus.RUNNING:
            return status
    async with transaction(services.sessions) as session:
        run = await _locked_run(session, organization_id, run_id)
        if run is None or run.status != RunStatus.RUNNING.value:
            return RunStatus.SKIPPED if run is None else RunStatus(run.status)
        await finish_run(session, run, RunStatus.SUCCEEDED)
    return RunStatus.SUCCEEDED


async def _record_outcome(
    services: Services,
    organization_id: uuid.UUID,
    run_id: uuid.UUID,
    index: int,
    action: dict[str, Any],
    outcome: executor.ActionOutcome,
) -> RunStatus:
    """Record one action's outcome; the run's status after it (RUNNING: go on)."""
    async with transaction(services.sessions) as session:
        run = await _locked_run(session, organization_id, run_id)
        if run is None:
            return RunStatus.SKIPPED
        if run.next_action != index or run.status != RunStatus.RUNNING.value:
            # Another attempt of this job recorded it first: that one goes on.
            return RunStatus(run.status)
        await record_action_result(
            session,
            run,
            {
                "index": index,
                "type": action["type"],
                "status": outcome.status,
                "detail": outcome.detail,
                "at": datetime.now(UTC).isoformat(),
            },
        )
        if outcome.status == "failed":
            error = outcome.detail.get("error", "the action failed")
            await finish_run(session, run, RunStatus.FAILED, f"action {index}: {error}")
            return RunStatus.FAILED
        if outcome.status == "waiting" and outcome.resume_at is not None:
            await wait_run(session, run, outcome.resume_at)
            await defer_run(session, services, organization_id, run_id, at=outcome.resume_at)
            return RunStatus.WAITING
    return RunStatus.RUNNING


async def _locked_run(
    session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID
) -> AutomationRun | None:
    run = await get_run(session, run_id, for_update=True)
    return run if run is not None and run.organization_id == organization_id else None
