"""Sequences at run time against the Kommo sandbox: a lead is enrolled and its first step is a
queue job scheduled at the step's time; made due (its scheduled_at moved to now, no sleeping)
and run by the worker, the step writes to the lead and the next one is scheduled; stopping
cancels the pending job, and a stale job that runs anyway does nothing; the lead replying
stops the walk; editing the sequence leaves walks under way as they started."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update

from agent_platform.agent.models import Agent
from agent_platform.automation.events import AutomationEvent, EventType, Origin
from agent_platform.automation.models import AutomationRun, Enrollment, Sequence
from agent_platform.automation.sequences.definition import parse_steps, parse_stop_on
from agent_platform.automation.sequences.enrollment import (
    STEP_JOB,
    enroll,
    pause_enrollment,
    resume_enrollment,
    run_sequence_step,
    stop_enrollment,
    stop_enrollments,
    stop_on_event,
)
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.kit.errors import ConflictError, NotFoundError
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.integration.test_llm_reply_flow import sandbox_notes
from tests.support.factories import ConnectedAgent
from tests.support.jobs import run_queued_jobs

GREETING = {"type": "add_note", "text": "Hello, {{ lead.name }}!"}
REMINDER = {"type": "add_note", "text": "Still there, {{ lead.name }}?"}
TWO_STEPS = [
    {"name": "greet", "delay": {"after_minutes": 60}, "actions": [GREETING]},
    {"name": "remind", "delay": {"after_minutes": 1440}, "actions": [REMINDER]},
]
REPLIED_OR_CLOSED = {"lead_replied": True, "won_or_lost": True, "stages": []}


async def create_sequence(
    services: Services,
    connected: ConnectedAgent,
    steps: list[dict[str, Any]] = TWO_STEPS,
    stop_on: dict[str, Any] = REPLIED_OR_CLOSED,
    *,
    enabled: bool = True,
) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        sequence = Sequence(
            organization_id=connected.organization_id,
            agent_id=connected.agent_id,
            name="Warm up",
            enabled=enabled,
            steps=parse_steps(steps, allow_private_networks=False),
            stop_on=parse_stop_on(stop_on),
        )
        session.add(sequence)
        await session.flush()
        return sequence.id


async def enroll_demo_lead(
    services: Services, connected: ConnectedAgent, sequence_id: uuid.UUID, now: datetime
) -> Enrollment | None:
    async with transaction(services.sessions) as session:
        return await enroll(
            session,
            services,
            organization_id=connected.organization_id,
            sequence_id=sequence_id,
            connection_id=connected.connection_id,
            lead_id=DEMO_LEAD_ID,
            origin=Origin(),
            now=now,
        )


async def enrollment_row(services: Services, enrollment_id: uuid.UUID) -> Enrollment:
    async with transaction(services.sessions) as session:
        return (
            await session.scalars(select(Enrollment).where(Enrollment.id == enrollment_id))
        ).one()


async def job_row(services: Services, job_id: int) -> dict[str, Any]:
    async with transaction(services.sessions) as session:
        row = (
            await session.execute(
                text(
                    "SELECT task_name, status, scheduled_at, args FROM procrastinate_jobs "
                    "WHERE id = :id"
                ),
                {"id": job_id},
            )
        ).one()
    return dict(row._mapping)


async def make_due(services: Services, job_id: int) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE id = :id"),
            {"id": job_id},
        )


async def step_runs(services: Services, enrollment_id: uuid.UUID) -> list[AutomationRun]:
    async with transaction(services.sessions) as session:
        return list(
            await session.scalars(
                select(AutomationRun)
                .where(AutomationRun.enrollment_id == enrollment_id)
                .order_by(AutomationRun.created_at)
            )
        )


async def note_texts(sandbox_url: str) -> list[str]:
    return [
        note["params"]["text"]
        for note in await sandbox_notes(sandbox_url)
        if note["entity_id"] == DEMO_LEAD_ID
    ]


async def test_the_first_step_is_scheduled_at_its_time_moved_into_the_agents_working_hours(
    services: Services, connected: ConnectedAgent
) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == connected.organization_id)
            .values(timezone="Europe/Berlin")
        )
        await session.execute(
            update(Agent)
            .where(Agent.id == connected.agent_id)
            .values(
                working_hours={
                    "timezone": "Europe/Berlin",
                    "weekly": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed")},
                }
            )
        )
    steps = [
        {
            "delay": {"at": "10:00", "within_working_hours": True},
            "actions": [GREETING],
        }
    ]
    sequence_id = await create_sequence(services, connected, steps)
    # Saturday 2030-01-12, 08:00 in Berlin: Saturday's 10:00 is closed, so the next opening,
    # Monday 09:00.
    saturday = datetime(2030, 1, 12, 7, 0, tzinfo=UTC)

    enrollment = await enroll_demo_lead(services, connected, sequence_id, saturday)

    assert enrollment is not None
    monday_opening = datetime(2030, 1, 14, 8, 0, tzinfo=UTC)
    assert enrollment.next_step_at == monday_opening
    assert enrollment.next_job_id is not None
    job = await job_row(services, enrollment.next_job_id)
    assert job["task_name"] == STEP_JOB
    assert job["status"] == "todo"
    assert job["scheduled_at"] == monday_opening
    assert job["args"] == {
        "organization_id": str(connected.organization_id),
        "enrollment_id": str(enrollment.id),
        "step": 0,
    }


async def test_a_due_step_writes_to_the_lead_and_the_next_is_scheduled_after_it(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    sequence_id = await create_sequence(services, connected)
    enrolled_at = datetime.now(UTC)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, enrolled_at)
    assert enrollment is not None
    assert enrollment.next_job_id is not None
    first_job = enrollment.next_job_id
    assert (await job_row(services, first_job))["scheduled_at"] == enrolled_at + timedelta(
        minutes=60
    )

    # Not yet due: the worker leaves it.
    await run_queued_jobs(services)
    assert await note_texts(sandbox[0]) == []

    await make_due(services, first_job)
    before_step = datetime.now(UTC)
    await run_queued_jobs(services)
    after_step = datetime.now(UTC)

    assert await note_texts(sandbox[0]) == ["Hello, Demo lead!"]
    assert (await job_row(services, first_job))["status"] == "succeeded"
    walked = await enrollment_row(services, enrollment.id)
    assert walked.status == "active"
    assert walked.current_step == 1
    assert walked.next_job_id is not None
    assert walked.next_job_id != first_job
    assert walked.next_step_at is not None
    day = timedelta(minutes=1440)
    assert before_step + day <= walked.next_step_at <= after_step + day
    second_job = await job_row(services, walked.next_job_id)
    assert second_job["scheduled_at"] == walked.next_step_at
    assert second_job["args"]["step"] == 1
    [run] = await step_runs(services, enrollment.id)
    assert run.kind == "sequence_step"
    assert run.matched is True
    assert run.status == "succeeded"
    assert [result["status"] for result in run.results] == ["succeeded"]

    await make_due(services, walked.next_job_id)
    await run_queued_jobs(services)

    assert await note_texts(sandbox[0]) == ["Hello, Demo lead!", "Still there, Demo lead?"]
    done = await enrollment_row(services, enrollment.id)
    assert done.status == "completed"
    assert done.current_step == 2
    assert done.ended_at is not None
    assert done.next_job_id is None


async def test_a_step_whose_conditions_do_not_hold_is_skipped_and_the_walk_goes_on(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    big_deals_only = {"field": "lead.price", "operator": "gt", "value": 1000}
    steps = [{**TWO_STEPS[0], "conditions": big_deals_only}, TWO_STEPS[1]]
    sequence_id = await create_sequence(services, connected, steps)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, datetime.now(UTC))
    assert enrollment is not None
    assert enrollment.next_job_id is not None

    await make_due(services, enrollment.next_job_id)
    await run_queued_jobs(services)

    assert await note_texts(sandbox[0]) == []
    [run] = await step_runs(services, enrollment.id)
    assert run.status == "skipped"
    assert run.matched is False
    assert run.trace is not None
    assert run.trace["seen"] == 0
    walked = await enrollment_row(services, enrollment.id)
    assert walked.status == "active"
    assert walked.current_step == 1


async def test_stopping_cancels_the_pending_job_and_a_stale_job_does_nothing(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    sequence_id = await create_sequence(services, connected)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, datetime.now(UTC))
    assert enrollment is not None
    assert enrollment.next_job_id is not None
    pending = enrollment.next_job_id

    async with transaction(services.sessions) as session:
        stopped = await stop_enrollments(
            session,
            organization_id=connected.organization_id,
            connection_id=connected.connection_id,
            lead_id=DEMO_LEAD_ID,
            sequence_id=None,
            reason="stopped by API",
        )

    assert [s.id for s in stopped] == [enrollment.id]
    assert (await job_row(services, pending))["status"] == "cancelled"
    row = await enrollment_row(services, enrollment.id)
    assert (row.status, row.stop_reason, row.next_job_id) == ("stopped", "stopped by API", None)
    assert row.ended_at is not None

    # The job raced the cancel and runs anyway: it finds the walk over.
    await run_sequence_step.function(
        services,
        organization_id=str(connected.organization_id),
        enrollment_id=str(enrollment.id),
        step=0,
    )
    assert await note_texts(sandbox[0]) == []
    assert await step_runs(services, enrollment.id) == []
    assert (await enrollment_row(services, enrollment.id)).status == "stopped"

    async with transaction(services.sessions) as session:
        finished = await session.get(Enrollment, enrollment.id)
        assert finished is not None
        with pytest.raises(ConflictError, match="stopped already"):
            await stop_enrollment(session, finished, "again")


async def test_the_lead_replying_stops_the_walk_and_cancels_its_job(
    services: Services, connected: ConnectedAgent
) -> None:
    sequence_id = await create_sequence(services, connected)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, datetime.now(UTC))
    assert enrollment is not None
    assert enrollment.next_job_id is not None

    def happened(event_type: EventType, **data: Any) -> AutomationEvent:
        return AutomationEvent(
            type=event_type,
            occurred_at=datetime.now(UTC),
            connection_id=connected.connection_id,
            lead_id=DEMO_LEAD_ID,
            data=data,
        )

    async with transaction(services.sessions) as session:
        # Neither a manager's message nor a move to an unlisted stage stops it.
        assert (
            await stop_on_event(
                session, connected.organization_id, happened(EventType.MESSAGE_OUTGOING, text="hi")
            )
            == []
        )
        assert (
            await stop_on_event(
                session,
                connected.organization_id,
                happened(EventType.LEAD_STATUS_CHANGED, to_status_id=55),
            )
            == []
        )
        stopped = await stop_on_event(
            session,
            connected.organization_id,
            happened(EventType.MESSAGE_INCOMING, text="Yes, tell me more"),
        )

    assert [s.id for s in stopped] == [enrollment.id]
    row = await enrollment_row(services, enrollment.id)
    assert (row.status, row.stop_reason) == ("stopped", "the lead replied")
    assert (await job_row(services, enrollment.next_job_id))["status"] == "cancelled"


async def test_won_stops_the_walk_and_another_organization_is_untouched(
    services: Services, connected: ConnectedAgent
) -> None:
    sequence_id = await create_sequence(services, connected)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, datetime.now(UTC))
    assert enrollment is not None
    won = AutomationEvent(
        type=EventType.LEAD_STATUS_CHANGED,
        occurred_at=datetime.now(UTC),
        connection_id=connected.connection_id,
        lead_id=DEMO_LEAD_ID,
        data={"to_status_id": 142},
    )

    async with transaction(services.sessions) as session:
        assert await stop_on_event(session, uuid.uuid4(), won) == []
        stopped = await stop_on_event(session, connected.organization_id, won)

    assert [s.stop_reason for s in stopped] == ["won"]


async def test_editing_the_sequence_leaves_a_walk_under_way_as_it_started(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    sequence_id = await create_sequence(services, connected)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, datetime.now(UTC))
    assert enrollment is not None
    assert enrollment.next_job_id is not None
    edited = parse_steps(
        [{"delay": {"after_minutes": 5}, "actions": [{"type": "add_note", "text": "Edited"}]}],
        allow_private_networks=False,
    )
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Sequence)
            .where(Sequence.id == sequence_id)
            .values(steps=edited, version=Sequence.version + 1)
        )

    await make_due(services, enrollment.next_job_id)
    await run_queued_jobs(services)

    assert await note_texts(sandbox[0]) == ["Hello, Demo lead!"]
    row = await enrollment_row(services, enrollment.id)
    assert row.sequence_version == 1
    assert row.steps == parse_steps(TWO_STEPS, allow_private_networks=False)
    assert row.current_step == 1


async def test_one_open_walk_per_lead_and_sequence(
    services: Services, connected: ConnectedAgent
) -> None:
    sequence_id = await create_sequence(services, connected)
    now = datetime.now(UTC)
    first = await enroll_demo_lead(services, connected, sequence_id, now)
    assert first is not None

    assert await enroll_demo_lead(services, connected, sequence_id, now) is None

    async with transaction(services.sessions) as session:
        await stop_enrollments(
            session,
            organization_id=connected.organization_id,
            connection_id=connected.connection_id,
            lead_id=DEMO_LEAD_ID,
            sequence_id=sequence_id,
            reason="manual",
        )
    again = await enroll_demo_lead(services, connected, sequence_id, now)
    assert again is not None
    assert again.id != first.id


async def test_a_disabled_or_unknown_sequence_enrolls_no_one(
    services: Services, connected: ConnectedAgent
) -> None:
    disabled = await create_sequence(services, connected, enabled=False)
    now = datetime.now(UTC)

    assert await enroll_demo_lead(services, connected, disabled, now) is None
    with pytest.raises(NotFoundError):
        await enroll_demo_lead(services, connected, uuid.uuid4(), now)
    async with transaction(services.sessions) as session:
        assert (await session.scalars(select(Enrollment))).all() == []


async def test_pausing_cancels_the_job_and_resuming_keeps_the_steps_time(
    services: Services, connected: ConnectedAgent
) -> None:
    sequence_id = await create_sequence(services, connected)
    now = datetime.now(UTC)
    enrollment = await enroll_demo_lead(services, connected, sequence_id, now)
    assert enrollment is not None
    assert enrollment.next_job_id is not None
    planned, first_job = enrollment.next_step_at, enrollment.next_job_id

    async with transaction(services.sessions) as session:
        row = await session.get(Enrollment, enrollment.id)
        assert row is not None
        await pause_enrollment(session, row)
    assert (await job_row(services, first_job))["status"] == "cancelled"
    assert (await enrollment_row(services, enrollment.id)).status == "paused"

    async with transaction(services.sessions) as session:
        row = await session.get(Enrollment, enrollment.id)
        assert row is not None
        await resume_enrollment(session, services, row, now=now + timedelta(minutes=10))

    resumed = await enrollment_row(services, enrollment.id)
    assert resumed.status == "active"
    assert resumed.next_step_at == planned
    assert resumed.next_job_id is not None
    assert resumed.next_job_id != first_job
    job = await job_row(services, resumed.next_job_id)
    assert (job["status"], job["scheduled_at"]) == ("todo", planned)
