"""A lead walking a sequence: enrolling it, stopping, pausing and resuming the walk, and the job
that runs one step.

Each step is a queue job scheduled at the step's time (automation.delays); the enrollment keeps
that job's id, and whatever ends or pauses the walk cancels the job in the same transaction.
A step job that starts anyway (it was already running, or raced the cancel) finds the
enrollment no longer at its step and does nothing. Runs and enrollments carry their own
copies of the steps: editing the sequence changes only later enrollments.

These functions write the queue's tables (deferring, cancelling), which the tenant database
role may not touch: callers use an unscoped transaction (db.session.transaction), and every
query here is scoped by organization explicitly.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.runtime.working_hours import WorkingHours
from agent_platform.automation.clock import (
    agent_working_hours,
    connection_agent_id,
    organization_zone,
)
from agent_platform.automation.delays import next_run_at, parse_delay
from agent_platform.automation.engine import (
    RuleError,
    evaluate,
    parse_condition,
)
from agent_platform.automation.events import AutomationEvent, EventType, Origin
from agent_platform.automation.facts import facts_for
from agent_platform.automation.lead_facts import LeadAndContact, read_lead_and_contact
from agent_platform.automation.models import (
    OPEN_ENROLLMENT_STATUSES,
    AutomationRun,
    Enrollment,
    EnrollmentStatus,
    RunKind,
    RunStatus,
    Sequence,
)
from agent_platform.automation.rules.lookup import rules_for
from agent_platform.automation.runs.repository import record_run
from agent_platform.automation.sequences.definition import stop_reason
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.kit.errors import ConflictError, NotFoundError
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services

STEP_JOB = "run_sequence_step"

log = structlog.get_logger("automation.sequences")


async def enroll(
    session: AsyncSession,
    services: Services,
    *,
    organization_id: uuid.UUID,
    sequence_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    origin: Origin,
    now: datetime,
) -> Enrollment | None:
    """Enroll the lead, its first step scheduled; None when the lead already walks this
    sequence or the sequence is disabled. NotFoundError for another organization's sequence
    or connection."""
    sequence = await session.scalar(
        select(Sequence).where(
            Sequence.id == sequence_id, Sequence.organization_id == organization_id
        )
    )
    if sequence is None:
        raise NotFoundError(f"sequence {sequence_id} not found")
    connection = await session.scalar(
        select(CrmConnection.id).where(
            CrmConnection.id == connection_id, CrmConnection.organization_id == organization_id
        )
    )
    if connection is None:
        raise NotFoundError(f"connection {connection_id} not found")
    if not sequence.enabled:
        return None
    # The unique index on open enrollments decides between two enrollments racing.
    enrollment = (
        await session.scalars(
            insert(Enrollment)
            .values(
                id=uuid.uuid4(),
                organization_id=organization_id,
                sequence_id=sequence.id,
                sequence_version=sequence.version,
                steps=sequence.steps,
                stop_on=sequence.stop_on,
                connection_id=connection_id,
                lead_id=lead_id,
                status=EnrollmentStatus.ACTIVE.value,
                current_step=0,
                origin=origin.to_json(),
            )
            .on_conflict_do_nothing(
                index_elements=[
                    Enrollment.sequence_id,
                    Enrollment.connection_id,
                    Enrollment.lead_id,
                ],
                index_where=Enrollment.status.in_(OPEN_ENROLLMENT_STATUSES),
            )
            .returning(Enrollment)
        )
    ).one_or_none()
    if enrollment is None:
        return None
    zone, hours = await _clock_of(session, services, enrollment)
    await _schedule_step(session, services, enrollment, after=now, zone=zone, hours=hours)
    log.info(
        "sequence_enrolled",
        enrollment_id=str(enrollment.id),
        sequence_id=str(sequence.id),
        lead_id=lead_id,
    )
    return enrollment


async def get_enrollment(
    session: AsyncSession,
    organization_id: uuid.UUID,
    enrollment_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Enrollment | None:
    statement = select(Enrollment).where(
        Enrollment.id == enrollment_id, Enrollment.organization_id == organization_id
    )
    if for_update:
        statement = statement.with_for_update()
    enrollment: Enrollment | None = await session.scalar(statement)
    return enrollment


async def stop_enrollments(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    sequence_id: uuid.UUID | None,
    reason: str,
) -> list[Enrollment]:
    """Stop the lead's open enrollments (in `sequence_id` only, when given); those stopped."""
    enrollments = await _open_enrollments(
        session, organization_id, connection_id, lead_id, sequence_id
    )
    for enrollment in enrollments:
        await stop_enrollment(session, enrollment, reason)
    return enrollments


async def stop_enrollment(session: AsyncSession, enrollment: Enrollment, reason: str) -> None:
    """End an open enrollment for `reason`, its pending step job cancelled."""
    if enrollment.status not in OPEN_ENROLLMENT_STATUSES:
        raise ConflictError(f"the enrollment is {enrollment.status} already")
    await _cancel_pending_job(session, enrollment)
    enrollment.status = EnrollmentStatus.STOPPED.value
    enrollment.stop_reason = reason
    enrollment.ended_at = datetime.now(UTC)
    enrollment.next_step_at = None
    await session.flush()
    log.info("sequence_stopped", enrollment_id=str(enrollment.id), reason=reason)


async def stop_on_event(
    session: AsyncSession, organization_id: uuid.UUID, event: AutomationEvent
) -> list[Enrollment]:
    """Stop the event's lead's enrollments whose stop conditions the event meets."""
    if event.connection_id is None or event.lead_id is None:
        return []
    stopped = []
    for enrollment in await _open_enrollments(
        session, organization_id, event.connection_id, event.lead_id, None
    ):
        reason = stop_reason(enrollment.stop_on, event)
        if reason is not None:
            await stop_enrollment(session, enrollment, reason)
            stopped.append(enrollment)
    return stopped


async def pause_enrollment(session: AsyncSession, enrollment: Enrollment) -> None:
    """Hold an active enrollment: its pending step job cancelled, its step time kept."""
    if enrollment.status != EnrollmentStatus.ACTIVE.value:
        raise ConflictError(
            f"only an active enrollment can be paused; this one is {enrollment.status}"
        )
    await _cancel_pending_job(session, enrollment)
    enrollment.status = EnrollmentStatus.PAUSED.value
    await session.flush()


async def resume_enrollment(
    session: AsyncSession, services: Services, enrollment: Enrollment, *, now: datetime
) -> None:
    """Walk on from the step it was paused at: at that step's time if still ahead; else as
    soon as the step's time of day and working hours allow (its wait counts as served)."""
    if enrollment.status != EnrollmentStatus.PAUSED.value:
        raise ConflictError(
            f"only a paused enrollment can be resumed; this one is {enrollment.status}"
        )
    enrollment.status = EnrollmentStatus.ACTIVE.value
    zone, hours = await _clock_of(session, services, enrollment)
    planned = enrollment.next_step_at
    if planned is not None and planned > now:
        await _defer_step(session, services, enrollment, planned)
    else:
        await _schedule_step(
            session, services, enrollment, after=now, zone=zone, hours=hours, wait_served=True
        )


@platform_job(STEP_JOB)
async def run_sequence_step(
    services: Services, *, organization_id: str, enrollment_id: str, step: int
) -> None:
    """Run step `step` of the enrollment, once: evaluate its conditions on the lead's facts,
    perform its actions (each result recorded as it comes, so a retry resumes after the last
    one done), then schedule the next step or complete the walk."""
    organization, enrollment_key = uuid.UUID(organization_id), uuid.UUID(enrollment_id)
    structlog.contextvars.bind_contextvars(
        organization_id=organization_id, enrollment_id=enrollment_id, step=step
    )
    async with transaction(services.sessions) as session:
        enrollment = await _due_enrollment(session, organization, enrollment_key, step)
        if enrollment is None:
            return
        evaluated = await _run_of(session, organization, enrollment, step) is not None
        connection_id, lead_id = enrollment.connection_id, enrollment.lead_id
    # Read from Kommo outside any transaction, and only by the attempt that evaluates.
    lead = None if evaluated else await read_lead_and_contact(services, connection_id, lead_id)
    async with transaction(services.sessions) as session:
        enrollment = await _due_enrollment(session, organization, enrollment_key, step)
        if enrollment is None:
            return
        zone, hours = await _clock_of(session, services, enrollment)
        run = await _run_of(session, organization, enrollment, step)
        if run is None:
            assert lead is not None, "a step is evaluated by the attempt that read the lead"
            run = await _evaluate_step(session, enrollment, step, lead, zone, hours)
        if run.status in (RunStatus.SKIPPED.value, RunStatus.FAILED.value):
            await _walk_on(session, services, enrollment, run, zone, hours)
            return
        run_id = run.id
    # The executor starts and stops sequences through this module: imported here, at run
    # time, to break that cycle.
    from agent_platform.automation.execution import execute_run

    await execute_run(services, organization, run_id)
    async with transaction(services.sessions) as session:
        # Stopped or paused while its actions ran: the step is done, the walk goes no further.
        enrollment = await _due_enrollment(session, organization, enrollment_key, step)
        if enrollment is not None:
            run = await _locked_run(session, organization, run_id)
            zone, hours = await _clock_of(session, services, enrollment)
            await _walk_on(session, services, enrollment, run, zone, hours)


async def _evaluate_step(
    session: AsyncSession,
    enrollment: Enrollment,
    step: int,
    lead: LeadAndContact,
    zone: ZoneInfo,
    hours: WorkingHours | None,
) -> AutomationRun:
    """The step's run, recorded: skipped when its conditions do not hold, else running."""
    now = datetime.now(UTC)
    definition = enrollment.steps[step]
    event = AutomationEvent(
        type=EventType.SEQUENCE_STEP,
        occurred_at=now,
        connection_id=enrollment.connection_id,
        lead_id=enrollment.lead_id,
        data={"sequence_id": str(enrollment.sequence_id), "step": step},
        lead=lead.lead,
        contact=lead.contact,
        # What its actions cause: the run's performer takes the origin from the event.
        origin=_actions_origin(enrollment),
        key=f"{enrollment.id}:{step}",
    )
    facts = facts_for(event, zone=zone, now=now, working_hours=hours)
    matched, trace, error = True, None, None
    try:
        condition = (
            None
            if definition.get("conditions") is None
            else parse_condition(definition["conditions"])
        )
        rules = await rules_for(session, enrollment.organization_id, condition)
        evaluation = evaluate(condition, facts, rules)
        matched, trace = evaluation.matched, evaluation.trace
    except RuleError as exc:
        # Stored steps were checked when saved; a referenced rule edited since may not parse.
        matched, error = False, f"the step's conditions cannot be evaluated: {exc}"
    if error is not None:
        status = RunStatus.FAILED
    else:
        status = RunStatus.RUNNING if matched else RunStatus.SKIPPED
    run = await record_run(
        session,
        organization_id=enrollment.organization_id,
        kind=RunKind.SEQUENCE_STEP,
        event=event,
        matched=matched,
        trace=trace,
        actions=definition["actions"] if matched else [],
        status=status,
        error=error,
        sequence_id=enrollment.sequence_id,
        enrollment_id=enrollment.id,
        dedupe_key=f"{enrollment.id}:{step}",
    )
    assert run is not None, "the enrollment's row lock makes the step's run new here"
    return run


async def _walk_on(
    session: AsyncSession,
    services: Services,
    enrollment: Enrollment,
    run: AutomationRun,
    zone: ZoneInfo,
    hours: WorkingHours | None,
) -> None:
    """After a step's run: failed → the enrollment failed; else the next step scheduled (a
    skipped step does not end the walk), or the walk completed."""
    now = datetime.now(UTC)
    enrollment.next_job_id = None
    enrollment.next_step_at = None
    if run.status == RunStatus.FAILED.value:
        enrollment.status = EnrollmentStatus.FAILED.value
        enrollment.stop_reason = run.error
        enrollment.ended_at = now
    else:
        enrollment.current_step += 1
        if enrollment.current_step < len(enrollment.steps):
            await _schedule_step(session, services, enrollment, after=now, zone=zone, hours=hours)
        else:
            enrollment.status = EnrollmentStatus.COMPLETED.value
            enrollment.ended_at = now
    await session.flush()
    log.info(
        "sequence_step_done",
        run_status=run.status,
        enrollment_status=enrollment.status,
        next_step_at=None
        if enrollment.next_step_at is None
        else enrollment.next_step_at.isoformat(),
    )


async def _schedule_step(
    session: AsyncSession,
    services: Services,
    enrollment: Enrollment,
    *,
    after: datetime,
    zone: ZoneInfo,
    hours: WorkingHours | None,
    wait_served: bool = False,
) -> None:
    step = enrollment.current_step
    delay = parse_delay(enrollment.steps[step]["delay"], f"steps[{step}].delay")
    if wait_served:
        delay = replace(delay, after_minutes=0)
    await _defer_step(
        session,
        services,
        enrollment,
        next_run_at(delay, after=after, zone=zone, working_hours=hours),
    )


async def _defer_step(
    session: AsyncSession, services: Services, enrollment: Enrollment, at: datetime
) -> None:
    enrollment.next_job_id = await defer_in_transaction(
        session,
        services.queue,
        run_sequence_step,
        services.settings.job_queue_name,
        schedule_at=at,
        organization_id=str(enrollment.organization_id),
        enrollment_id=str(enrollment.id),
        step=enrollment.current_step,
    )
    enrollment.next_step_at = at
    await session.flush()


async def _cancel_pending_job(session: AsyncSession, enrollment: Enrollment) -> None:
    """Cancel the step job unless it has started (a started one finds the enrollment moved
    on and does nothing)."""
    if enrollment.next_job_id is not None:
        await session.execute(
            text("SELECT procrastinate_cancel_job_v1(:job_id, false, false)"),
            {"job_id": enrollment.next_job_id},
        )
        enrollment.next_job_id = None


def _actions_origin(enrollment: Enrollment) -> Origin:
    """What the step's actions cause is one link further down the chain that enrolled the
    lead, so that chain's depth limit holds across the sequence."""
    return Origin.from_json(enrollment.origin).after(enrollment.sequence_id)


async def _due_enrollment(
    session: AsyncSession, organization_id: uuid.UUID, enrollment_id: uuid.UUID, step: int
) -> Enrollment | None:
    """The enrollment, locked, when it is active at `step`; None for a stale job."""
    enrollment = await get_enrollment(session, organization_id, enrollment_id, for_update=True)
    if (
        enrollment is None
        or enrollment.status != EnrollmentStatus.ACTIVE.value
        or enrollment.current_step != step
    ):
        log.info("sequence_step_not_due", status=None if enrollment is None else enrollment.status)
        return None
    return enrollment


async def _run_of(
    session: AsyncSession, organization_id: uuid.UUID, enrollment: Enrollment, step: int
) -> AutomationRun | None:
    """The step's run recorded by an earlier attempt of the job, if any."""
    run: AutomationRun | None = await session.scalar(
        select(AutomationRun)
        .where(
            AutomationRun.organization_id == organization_id,
            AutomationRun.dedupe_key == f"{enrollment.id}:{step}",
        )
        .with_for_update()
    )
    return run


async def _locked_run(
    session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID
) -> AutomationRun:
    run: AutomationRun = (
        await session.scalars(
            select(AutomationRun)
            .where(AutomationRun.id == run_id, AutomationRun.organization_id == organization_id)
            .with_for_update()
        )
    ).one()
    return run


async def _open_enrollments(
    session: AsyncSession,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    sequence_id: uuid.UUID | None,
) -> list[Enrollment]:
    statement = (
        select(Enrollment)
        .where(
            Enrollment.organization_id == organization_id,
            Enrollment.connection_id == connection_id,
            Enrollment.lead_id == lead_id,
            Enrollment.status.in_(OPEN_ENROLLMENT_STATUSES),
        )
        .order_by(Enrollment.created_at)
        .with_for_update()
    )
    if sequence_id is not None:
        statement = statement.where(Enrollment.sequence_id == sequence_id)
    return list(await session.scalars(statement))


async def _clock_of(
    session: AsyncSession, services: Services, enrollment: Enrollment
) -> tuple[ZoneInfo, WorkingHours | None]:
    """The organization's time zone, and the working hours of the agent that speaks for the
    sequence (its own agent, else the connection's)."""
    agent_id = await session.scalar(
        select(Sequence.agent_id).where(
            Sequence.id == enrollment.sequence_id,
            Sequence.organization_id == enrollment.organization_id,
        )
    ) or await connection_agent_id(session, enrollment.organization_id, enrollment.connection_id)
    return (
        await organization_zone(session, enrollment.organization_id),
        await agent_working_hours(services, session, agent_id),
    )
