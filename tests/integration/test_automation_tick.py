"""The clock, driven with a chosen `now`: silences and overdue tasks fire once each, schedules
by cron in the organization's zone, retention deletes old runs and expired echoes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from agent_platform.automation.echoes import expect_echo
from agent_platform.automation.events import AutomationEvent, EventType, Origin
from agent_platform.automation.models import AutomationRun, ExpectedEcho, RunKind, RunStatus
from agent_platform.automation.runs.repository import record_run
from agent_platform.automation.tick import tick
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmTask, TaskSource
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.integration.test_automation_dispatch import add_trigger, runs
from tests.support.factories import ConnectedAgent
from tests.support.jobs import run_queued_jobs

NOTE = [{"type": "add_note", "text": "Checking in on {{ lead.name }}"}]


async def conversation_with(
    services: Services, connected: ConnectedAgent, *messages: tuple[str, datetime]
) -> uuid.UUID:
    """The demo lead's conversation holding `messages` (role, time)."""
    async with transaction(services.sessions) as session:
        conversation = Conversation(
            organization_id=connected.organization_id,
            connection_id=connected.connection_id,
            agent_id=connected.agent_id,
            entity_type="leads",
            entity_id=DEMO_LEAD_ID,
            last_message_at=max(at for _, at in messages),
        )
        session.add(conversation)
        await session.flush()
        for role, at in messages:
            session.add(
                Message(
                    organization_id=connected.organization_id,
                    conversation_id=conversation.id,
                    role=role,
                    content=f"{role} wrote",
                    created_at=at,
                )
            )
        return conversation.id


async def test_a_lead_silence_fires_once_when_it_is_long_enough(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    trigger = await add_trigger(
        services,
        connected,
        event_type=EventType.LEAD_SILENT,
        parameters={"after_minutes": 60},
        actions=NOTE,
    )
    answered_at = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    await conversation_with(
        services,
        connected,
        ("user", answered_at - timedelta(minutes=5)),
        ("assistant", answered_at),
    )

    assert await tick(services, answered_at + timedelta(minutes=59)) == 0
    assert await tick(services, answered_at + timedelta(minutes=61)) == 1
    await run_queued_jobs(services)
    assert await tick(services, answered_at + timedelta(minutes=62)) == 0
    await run_queued_jobs(services)

    [run] = await runs(services)
    assert (run.trigger_id, run.event_type, run.status) == (trigger, "lead_silent", "succeeded")
    assert run.event["data"] == {"minutes": 61}
    assert run.event["lead"]["id"] == DEMO_LEAD_ID  # read from Kommo: a silence carries no lead


async def test_the_lead_writing_again_ends_the_silence_and_a_new_one_fires_again(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    lead_silent, manager_silent = [
        await add_trigger(
            services, connected, event_type=kind, parameters={"after_minutes": 30}, actions=NOTE
        )
        for kind in (EventType.LEAD_SILENT, EventType.MANAGER_SILENT)
    ]
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    conversation_id = await conversation_with(services, connected, ("assistant", start))
    await tick(services, start + timedelta(minutes=31))
    await run_queued_jobs(services)
    # The lead answers; nobody answers the lead for 31 minutes.
    lead_wrote = start + timedelta(hours=2)
    async with transaction(services.sessions) as session:
        session.add(
            Message(
                organization_id=connected.organization_id,
                conversation_id=conversation_id,
                role="user",
                content="Still there?",
                created_at=lead_wrote,
            )
        )
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(last_message_at=lead_wrote)
        )
    await tick(services, start + timedelta(hours=2, minutes=31))
    await run_queued_jobs(services)

    assert [(run.trigger_id, run.status) for run in await runs(services)] == [
        (lead_silent, "succeeded"),
        (manager_silent, "succeeded"),
    ]


async def test_an_overdue_task_fires_once(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    trigger = await add_trigger(
        services, connected, event_type=EventType.TASK_OVERDUE, actions=NOTE
    )
    due = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    async with transaction(services.sessions) as session:
        session.add(
            CrmTask(
                organization_id=connected.organization_id,
                connection_id=connected.connection_id,
                source=TaskSource.KOMMO.value,
                entity_type="leads",
                entity_id=DEMO_LEAD_ID,
                external_id=5,
                text="Call back",
                complete_till=due,
            )
        )

    assert await tick(services, due - timedelta(minutes=1)) == 0
    assert await tick(services, due + timedelta(minutes=1)) == 1
    await run_queued_jobs(services)
    assert await tick(services, due + timedelta(minutes=2)) == 0

    [run] = await runs(services)
    assert (run.trigger_id, run.event_type, run.status) == (trigger, "task_overdue", "succeeded")
    assert run.event["data"]["text"] == "Call back"


async def test_a_schedule_fires_on_its_minute_in_the_organizations_zone(
    services: Services, connected: ConnectedAgent
) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == connected.organization_id)
            .values(timezone="Europe/Berlin")
        )
    await add_trigger(
        services,
        connected,
        event_type=EventType.SCHEDULE,
        parameters={"cron": "0 9 * * 1"},
        actions=[{"type": "wait", "minutes": 5}],
    )
    monday_nine_in_berlin = datetime(2025, 3, 3, 8, 0, 30, tzinfo=UTC)

    assert await tick(services, monday_nine_in_berlin - timedelta(hours=1)) == 0
    assert await tick(services, monday_nine_in_berlin) == 1
    await run_queued_jobs(services)
    # Ticks later in the catch-up window find it fired; past the window nothing is due.
    assert await tick(services, monday_nine_in_berlin + timedelta(minutes=3)) == 0
    assert await tick(services, monday_nine_in_berlin + timedelta(hours=1)) == 0


async def test_a_late_tick_still_fires_the_scheduled_time_once(
    services: Services, connected: ConnectedAgent
) -> None:
    await add_trigger(
        services,
        connected,
        event_type=EventType.SCHEDULE,
        parameters={"cron": "*/15 * * * *"},
        actions=[{"type": "wait", "minutes": 5}],
    )
    quarter_past = datetime(2025, 3, 3, 8, 15, tzinfo=UTC)

    assert await tick(services, quarter_past + timedelta(minutes=2, seconds=5)) == 1
    await run_queued_jobs(services)
    assert await tick(services, quarter_past + timedelta(minutes=3)) == 0
    [run] = await runs(services)
    assert run.event["key"] == f"schedule:{quarter_past.isoformat()}"


async def test_retention_deletes_old_runs_and_expired_echoes(
    services: Services, connected: ConnectedAgent
) -> None:
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        for key in ("old", "recent"):
            await record_run(
                session,
                organization_id=connected.organization_id,
                kind=RunKind.RULE,
                event=AutomationEvent(type=EventType.MANUAL, occurred_at=now, key=key),
                matched=True,
                trace={"matched": True, "always": True},
                actions=[],
                status=RunStatus.SUCCEEDED,
                dedupe_key=key,
            )
        await session.execute(
            update(AutomationRun)
            .where(AutomationRun.dedupe_key == "old")
            .values(created_at=now - timedelta(days=31))
        )
        for ttl in (timedelta(seconds=-1), timedelta(minutes=10)):
            await expect_echo(
                session,
                organization_id=connected.organization_id,
                connection_id=connected.connection_id,
                lead_id=DEMO_LEAD_ID,
                event_type=EventType.LEAD_TAG_ADDED,
                match={"tag": "x"},
                origin=Origin(),
                ttl=ttl,
            )

    await tick(services, now)

    assert [run.dedupe_key for run in await runs(services)] == ["recent"]
    async with transaction(services.sessions) as session:
        echoes = list(await session.scalars(select(ExpectedEcho)))
    assert len(echoes) == 1
    assert echoes[0].expires_at > now
