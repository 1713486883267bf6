"""The dashboard's figures from real rows: exact for one organization (in Moscow's time zone),
untouched by another organization's rows, days counted in the organization's zone."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import LeadSnapshot
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmConnection, CrmDelivery, InboxEvent
from agent_platform.dashboard.figures import DayCount, StageCount, dashboard_figures
from agent_platform.db.session import transaction
from agent_platform.llm.models import LlmBudget, LlmCall
from agent_platform.organization.models import Organization
from agent_platform.services import Services

# 15:00 in Moscow (UTC+3 all year): "today" there began at 2025-03-09 21:00 UTC.
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
TODAY = date(2025, 3, 10)


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


@dataclass
class Tenant:
    """An organization with one Kommo connection, and helpers that write its rows."""

    session: AsyncSession
    organization_id: uuid.UUID
    connection_id: uuid.UUID
    keys: list[str] = field(default_factory=list)

    async def conversation(
        self, lead_id: int, *, stage: tuple[int, int] | None = None
    ) -> uuid.UUID:
        conversation = Conversation(
            organization_id=self.organization_id,
            connection_id=self.connection_id,
            entity_type="leads",
            entity_id=lead_id,
        )
        self.session.add(conversation)
        if stage is not None:
            pipeline_id, status_id = stage
            self.session.add(
                LeadSnapshot(
                    organization_id=self.organization_id,
                    connection_id=self.connection_id,
                    lead_id=lead_id,
                    facts={"id": lead_id, "pipeline_id": pipeline_id, "status_id": status_id},
                )
            )
        await self.session.flush()
        return conversation.id

    async def inbox_event(self, received_at: datetime, status: str = "handled") -> uuid.UUID:
        event = InboxEvent(
            organization_id=self.organization_id,
            connection_id=self.connection_id,
            source="kommo",
            dedupe_key=secrets.token_hex(8),
            payload={},
            received_at=received_at,
            status=status,
        )
        self.session.add(event)
        await self.session.flush()
        return event.id

    async def customer_message(
        self, conversation_id: uuid.UUID, received_at: datetime
    ) -> uuid.UUID:
        event_id = await self.inbox_event(received_at)
        await self.message(conversation_id, "user", received_at, inbox_event_id=event_id)
        return event_id

    async def message(
        self,
        conversation_id: uuid.UUID,
        role: str,
        created_at: datetime,
        inbox_event_id: uuid.UUID | None = None,
    ) -> None:
        self.session.add(
            Message(
                organization_id=self.organization_id,
                conversation_id=conversation_id,
                inbox_event_id=inbox_event_id,
                role=role,
                content=f"{role} wrote",
                created_at=created_at,
            )
        )
        await self.session.flush()

    async def delivery(self, key: str, *, sent_at: datetime | None, kind: str = "chats") -> None:
        self.session.add(
            CrmDelivery(
                organization_id=self.organization_id,
                connection_id=self.connection_id,
                idempotency_key=key,
                kind=kind,
                entity_type="leads",
                entity_id=1,
                payload={},
                status="pending" if sent_at is None else "sent",
                sent_at=sent_at,
            )
        )
        await self.session.flush()

    async def reply(
        self,
        conversation_id: uuid.UUID,
        to_event: uuid.UUID,
        *,
        written_at: datetime,
        sent_at: datetime,
    ) -> None:
        """The agent's reply as agent.service stores it: its message, then its delivery."""
        await self.message(conversation_id, "assistant", written_at)
        await self.delivery(f"reply:{to_event}", sent_at=sent_at)

    async def hand_off(self, conversation_id: uuid.UUID, handed_off_at: datetime) -> None:
        conversation = await self.session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.handed_off_at = handed_off_at
        await self.session.flush()

    async def llm_call(
        self, created_at: datetime, tokens_in: int, tokens_out: int, cost_usd: str
    ) -> None:
        self.session.add(
            LlmCall(
                organization_id=self.organization_id,
                model_requested="test/model",
                model_used="test/model",
                status="ok",
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=Decimal(cost_usd),
                cost_source="provider",
                created_at=created_at,
            )
        )
        await self.session.flush()


async def new_tenant(session: AsyncSession, name: str, timezone: str) -> Tenant:
    organization = Organization(
        name=name, slug=f"{name.lower()}-{secrets.token_hex(3)}", timezone=timezone
    )
    session.add(organization)
    await session.flush()
    connection = CrmConnection(
        organization_id=organization.id,
        subdomain=name.lower(),
        base_url="https://kommo.invalid",
        webhook_token=secrets.token_urlsafe(16),
    )
    session.add(connection)
    await session.flush()
    return Tenant(session, organization.id, connection.id)


async def fill_moscow(tenant: Tenant) -> None:
    """The organization whose figures are asserted (days from 2025-03-04 to 2025-03-10,
    Moscow time). Each row says in which figure it counts."""
    # Lead 101: a message at 23:30 UTC on the 9th is 02:30 on the 10th in Moscow: today.
    # Answered in 30 s.
    first = await tenant.conversation(101, stage=(1, 10))
    event = await tenant.customer_message(first, at("2025-03-09T23:30:00"))
    await tenant.reply(
        first, event, written_at=at("2025-03-09T23:30:20"), sent_at=at("2025-03-09T23:30:30")
    )

    # Lead 102 on the 8th: two messages answered by one reply keyed to the second (70 s and
    # 30 s); then a message handed over (never answered: left out); a manager writes; the
    # customer writes again, answered in 120 s. A follow-up is sent on the 9th.
    second = await tenant.conversation(102, stage=(1, 10))
    await tenant.customer_message(second, at("2025-03-08T10:00:00"))
    burst_end = await tenant.customer_message(second, at("2025-03-08T10:00:40"))
    await tenant.reply(
        second, burst_end, written_at=at("2025-03-08T10:01:00"), sent_at=at("2025-03-08T10:01:10")
    )
    await tenant.customer_message(second, at("2025-03-08T12:00:00"))
    await tenant.hand_off(second, at("2025-03-08T12:00:05"))
    await tenant.message(second, "manager", at("2025-03-08T12:30:00"))
    again = await tenant.customer_message(second, at("2025-03-08T13:00:00"))
    await tenant.reply(
        second, again, written_at=at("2025-03-08T13:01:00"), sent_at=at("2025-03-08T13:02:00")
    )
    await tenant.message(second, "assistant", at("2025-03-09T08:59:50"))
    await tenant.delivery("follow_up:call-1", sent_at=at("2025-03-09T09:00:00"))

    # Lead 103, of no known stage: the message came at 23:59 Moscow time on the 3rd (before
    # the 7 days: not timed), its reply just after midnight on the 4th (active, sent then).
    third = await tenant.conversation(103)
    early = await tenant.customer_message(third, at("2025-03-03T20:59:00"))
    await tenant.reply(
        third, early, written_at=at("2025-03-03T21:00:30"), sent_at=at("2025-03-03T21:01:00")
    )

    # Lead 104: only old activity and an old handoff; a system message in the days counts
    # for nothing.
    fourth = await tenant.conversation(104, stage=(2, 20))
    await tenant.customer_message(fourth, at("2025-03-01T10:00:00"))
    await tenant.hand_off(fourth, at("2025-03-02T10:00:00"))
    await tenant.message(fourth, "system", at("2025-03-09T10:00:00"))

    # Lead 105: a message at 00:59 Moscow time and a handoff at 01:00 on the 10th (the 9th in
    # UTC): today's.
    fifth = await tenant.conversation(105, stage=(2, 20))
    await tenant.customer_message(fifth, at("2025-03-09T21:59:00"))
    await tenant.hand_off(fifth, at("2025-03-09T22:00:00"))

    # Not replies: a reply not yet sent, a note an automation wrote, a task.
    pending = await tenant.customer_message(fifth, at("2025-03-10T11:59:00"))
    await tenant.delivery(f"reply:{pending}", sent_at=None)
    await tenant.delivery("task_created:1", sent_at=at("2025-03-10T08:00:00"), kind="note")
    await tenant.delivery("crm-task:1", sent_at=at("2025-03-10T08:00:00"), kind="task")

    # Inbox in the last 24 h (since 12:00 UTC on the 9th): the messages of 21:59, 23:30 and
    # 11:59 handled, one event failed; an older failure is outside.
    await tenant.inbox_event(at("2025-03-10T06:00:00"), status="failed")
    await tenant.inbox_event(at("2025-03-09T11:00:00"), status="failed")

    # LLM: March in UTC. The call at 23:00 UTC on Feb 28 is March in Moscow, February for
    # the bill.
    tenant.session.add(
        LlmBudget(organization_id=tenant.organization_id, monthly_limit_usd=Decimal("10.00"))
    )
    await tenant.llm_call(at("2025-03-01T00:30:00"), 100, 50, "0.5")
    await tenant.llm_call(at("2025-03-09T15:00:00"), 200, 80, "1.25")
    await tenant.llm_call(at("2025-02-28T23:00:00"), 999, 999, "9")


async def fill_other(tenant: Tenant) -> None:
    """Another organization with rows of every kind in the same days: none may count above."""
    conversation = await tenant.conversation(101, stage=(1, 10))
    event = await tenant.customer_message(conversation, at("2025-03-10T09:00:00"))
    await tenant.reply(
        conversation, event, written_at=at("2025-03-10T09:00:05"), sent_at=at("2025-03-10T09:00:10")
    )
    await tenant.delivery("follow_up:other", sent_at=at("2025-03-09T09:00:00"))
    await tenant.hand_off(conversation, at("2025-03-10T09:30:00"))
    await tenant.inbox_event(at("2025-03-10T10:00:00"), status="failed")
    await tenant.llm_call(at("2025-03-05T10:00:00"), 5000, 5000, "3")


async def add_jobs(session: AsyncSession, queue: str) -> None:
    """Jobs of the platform's queue (and one of another): waiting and active now, and jobs
    that finished within the last 24 h (as their events say) or before — the failed ones
    stay failed in the queue."""
    open_jobs = [("todo", queue), ("todo", queue), ("doing", queue)]
    for status, queue_name in [*open_jobs, ("todo", "elsewhere")]:
        await session.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, status)"
                " VALUES (:queue, 'test.job', CAST(:status AS procrastinate_job_status))"
            ),
            {"queue": queue_name, "status": status},
        )
    endings = [
        ("succeeded", "2025-03-10T11:00:00"),
        ("succeeded", "2025-03-09T13:00:00"),
        ("failed", "2025-03-10T01:00:00"),
        ("failed", "2025-03-09T11:00:00"),  # more than 24 h ago
    ]
    for ending, when in endings:
        job_id = await session.scalar(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, status)"
                " VALUES (:queue, 'test.job', CAST(:status AS procrastinate_job_status))"
                " RETURNING id"
            ),
            {"queue": queue, "status": ending},
        )
        await session.execute(
            text(
                "INSERT INTO procrastinate_events (job_id, type, at)"
                " VALUES (:job_id, CAST(:type AS procrastinate_job_event_type), :at)"
            ),
            {"job_id": job_id, "type": ending, "at": at(when)},
        )


async def test_figures_are_exact_in_the_organizations_time_zone(services: Services) -> None:
    async with transaction(services.sessions) as session:
        moscow = await new_tenant(session, "Moscow", "Europe/Moscow")
        other = await new_tenant(session, "Other", "UTC")
        await fill_moscow(moscow)
        await fill_other(other)
        await add_jobs(session, services.settings.job_queue_name)

    figures = await dashboard_figures(services, moscow.organization_id, now=NOW)

    assert figures.timezone == "Europe/Moscow"
    assert figures.today == TODAY
    days = [TODAY - timedelta(days=back) for back in range(6, -1, -1)]
    assert figures.conversations.by_day == tuple(
        DayCount(day, count) for day, count in zip(days, [1, 0, 0, 0, 1, 1, 2], strict=True)
    )
    assert (figures.conversations.today, figures.conversations.last_7_days) == (2, 4)
    assert figures.replies_sent.by_day == tuple(
        DayCount(day, count) for day, count in zip(days, [1, 0, 0, 0, 2, 1, 1], strict=True)
    )
    assert (figures.replies_sent.today, figures.replies_sent.last_7_days) == (1, 5)
    # Answered in 30, 70, 30 and 120 seconds.
    assert figures.first_response.median_seconds == 50.0
    assert figures.first_response.answered_messages == 4
    assert (figures.handoffs.today, figures.handoffs.last_7_days) == (1, 2)
    assert figures.leads_by_stage == (
        StageCount(pipeline_id=1, status_id=10, leads=2),
        StageCount(pipeline_id=2, status_id=20, leads=1),
        StageCount(pipeline_id=None, status_id=None, leads=1),
    )
    assert figures.llm.budget.month == date(2025, 3, 1)
    assert figures.llm.budget.spent_usd == Decimal("1.75")
    assert figures.llm.budget.limit_usd == Decimal("10.00")
    assert (figures.llm.tokens_in, figures.llm.tokens_out, figures.llm.calls) == (300, 130, 2)
    assert (figures.inbox_last_24h.failed, figures.inbox_last_24h.total) == (1, 4)
    # The queue is the platform's: every organization's jobs.
    queue = figures.queue
    assert queue.now.queue == services.settings.job_queue_name
    assert (queue.now.waiting, queue.now.active, queue.now.failed) == (2, 1, 2)
    assert (queue.jobs_last_24h.failed, queue.jobs_last_24h.total) == (1, 3)
    assert queue.jobs_last_24h.ratio == 1 / 3


async def test_the_other_organization_sees_only_its_own_rows(services: Services) -> None:
    async with transaction(services.sessions) as session:
        moscow = await new_tenant(session, "Moscow", "Europe/Moscow")
        other = await new_tenant(session, "Other", "UTC")
        await fill_moscow(moscow)
        await fill_other(other)

    figures = await dashboard_figures(services, other.organization_id, now=NOW)

    assert figures.timezone == "UTC"
    assert (figures.conversations.today, figures.conversations.last_7_days) == (1, 1)
    assert (figures.replies_sent.today, figures.replies_sent.last_7_days) == (1, 2)
    assert figures.first_response.median_seconds == 10.0
    assert (figures.handoffs.today, figures.handoffs.last_7_days) == (1, 1)
    assert figures.leads_by_stage == (StageCount(pipeline_id=1, status_id=10, leads=1),)
    assert figures.llm.budget.spent_usd == Decimal(3)
    assert figures.llm.budget.limit_usd is None
    assert (figures.inbox_last_24h.failed, figures.inbox_last_24h.total) == (1, 2)


async def test_an_organization_with_nothing_yet_reads_zeros(services: Services) -> None:
    async with transaction(services.sessions) as session:
        empty = await new_tenant(session, "Empty", "Asia/Tokyo")

    figures = await dashboard_figures(services, empty.organization_id, now=NOW)

    assert figures.conversations.by_day[-1] == DayCount(date(2025, 3, 10), 0)
    assert figures.conversations.last_7_days == 0
    assert figures.replies_sent.last_7_days == 0
    assert figures.first_response.median_seconds is None
    assert figures.first_response.answered_messages == 0
    assert figures.leads_by_stage == ()
    assert figures.llm.budget.spent_usd == Decimal(0)
    assert figures.inbox_last_24h.ratio is None
