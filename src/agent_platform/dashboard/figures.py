"""The dashboard's figures for one organization, read from the database as they are now.

Days are the organization's (Organization.timezone; UTC when it names no zone this machine
knows): "today" runs from its local midnight to `now`, and "7 days" is today and the six local
days before it — the seven points of each small chart.

- Conversations active: those in which the customer, the agent or a manager wrote (a message
  of role user, assistant or manager) that day; over 7 days each counts once.
- Replies sent: the agent's replies to customers' messages (out-of-hours messages included)
  and its follow-ups that Kommo accepted (crm_deliveries sent, keys `reply:` / `follow_up:`),
  by the day they were sent. Notes, tasks and automation's messages are not replies.
- Median first-response time (7 days): for every customer message received in the 7 days and
  answered, the time from its inbox event's `received_at` to the `sent_at` of the reply that
  answered it; the median over those messages. A reply answers the message it is keyed to
  (`reply:<inbox event id>`) and every earlier customer message of the same turn — the
  customer's messages since the conversation's last assistant or manager message — as the
  agent covers a burst with one reply (agent.reply_state.covered_by_reply_to). Messages not
  answered (handed over, withheld, still waiting) are left out; `answered_messages` says how
  many messages the median is of.
- Handoffs: conversations whose handoff to a person (conversations.handed_off_at, the latest
  one of each conversation) falls in the day or the 7 days.
- Leads by stage: the leads whose conversation was active in the 7 days, by their stage as the
  platform last saw it — the pipeline_id and status_id of the lead's automation snapshot
  (automation_lead_snapshots.facts, written from every lead webhook). Nothing else stores a
  lead's stage (agent.lead_stage reads it from Kommo and keeps it only for the reply), so a
  lead no lead webhook told us about counts under no stage (None, None). Stage names are
  Kommo's and are not stored.
- LLM: tokens and cost of this calendar month — in UTC, as providers bill and as the budget
  counts it (llm.budget) — against the organization's monthly budget.
- Queue: jobs waiting, active and failed now, and the share of jobs that failed among those
  that finished in the last 24 hours. The queue is shared by every organization on the
  platform: these figures are the platform's, not the organization's.
- Inbox: the organization's webhook events received in the last 24 hours and those of them a
  job gave up on (status failed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from agent_platform.automation.clock import organization_zone
from agent_platform.dashboard import queries
from agent_platform.dashboard.queries import DayBounds, FailureRate
from agent_platform.db.session import tenant_transaction
from agent_platform.llm import repository as llm_usage
from agent_platform.llm.budget import BudgetState, budget_state, month_start
from agent_platform.queue.stats import QueueFigures, queue_figures
from agent_platform.services import Services

CHART_DAYS = 7
ERROR_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class DayCount:
    day: date  # a day in the organization's time zone
    count: int


@dataclass(frozen=True)
class DailyFigure:
    today: int
    last_7_days: int
    by_day: tuple[DayCount, ...]  # CHART_DAYS points, oldest first, the last one today


@dataclass(frozen=True)
class PeriodFigure:
    today: int
    last_7_days: int


@dataclass(frozen=True)
class FirstResponse:
    median_seconds: float | None  # None when no message was answered in the 7 days
    answered_messages: int


@dataclass(frozen=True)
class StageCount:
    # Kommo's ids; both None for leads whose stage the platform has not seen.
    pipeline_id: int | None
    status_id: int | None
    leads: int


@dataclass(frozen=True)
class LlmMonth:
    budget: BudgetState  # month, spent_usd, limit_usd, used_ratio, warning_reached, exhausted
    tokens_in: int
    tokens_out: int
    calls: int
    # Answered calls whose cost is unknown: the spend leaves them out.
    calls_of_unknown_cost: int


@dataclass(frozen=True)
class QueueHealth:
    # Platform-wide: the queue serves every organization.
    now: QueueFigures  # waiting, delayed, active, failed, oldest_waiting_seconds
    jobs_last_24h: FailureRate  # failed among finished


@dataclass(frozen=True)
class DashboardFigures:
    organization_id: uuid.UUID
    timezone: str  # the zone the days are counted in
    today: date
    generated_at: datetime
    conversations: DailyFigure
    replies_sent: DailyFigure
    first_response: FirstResponse
    handoffs: PeriodFigure
    leads_by_stage: tuple[StageCount, ...]  # most leads first
    llm: LlmMonth
    queue: QueueHealth
    inbox_last_24h: FailureRate  # the organization's webhook events failed among received


def chart_days(now: datetime, zone: ZoneInfo) -> list[DayBounds]:
    """Today and the CHART_DAYS - 1 local days before it, oldest first; today ends at `now`."""
    today = now.astimezone(zone).date()
    starts = [
        datetime.combine(today - timedelta(days=back), time(), tzinfo=zone)
        for back in range(CHART_DAYS - 1, -1, -1)
    ]
    return [DayBounds(start, end) for start, end in zip(starts, [*starts[1:], now], strict=True)]


async def dashboard_figures(
    services: Services, organization_id: uuid.UUID, *, now: datetime
) -> DashboardFigures:
    async with tenant_transaction(services.sessions, organization_id) as session:
        zone = await organization_zone(session, organization_id)
        days = chart_days(now, zone)
        today, since = days[-1], days[0].start
        conversations = await queries.active_conversations(session, organization_id, days)
        replies = await queries.replies_sent(session, organization_id, days)
        handoffs_today, handoffs_week = await queries.handoffs(
            session, organization_id, today_start=today.start, since=since, until=now
        )
        response = await queries.response_times(session, organization_id, since=since, until=now)
        stages = await queries.leads_by_stage(session, organization_id, since=since, until=now)
        budget = await budget_state(session, organization_id, now)
        usage = await llm_usage.usage_by_model(session, organization_id, month_start(now))
        inbox = await queries.inbox_failures(
            session, organization_id, since=now - ERROR_WINDOW, until=now
        )
    queue = services.settings.job_queue_name
    # queue_figures also reports any other queue holding jobs: only the platform's is shown.
    by_queue = {figures.queue: figures for figures in await queue_figures(services.engine, [queue])}
    queue_now = by_queue[queue]
    jobs = await queries.finished_jobs(services.engine, queue, since=now - ERROR_WINDOW, until=now)
    return DashboardFigures(
        organization_id=organization_id,
        timezone=zone.key,
        today=today.start.date(),
        generated_at=now,
        conversations=_daily(conversations, days),
        replies_sent=_daily(replies, days),
        first_response=FirstResponse(response.median_seconds, response.answered_messages),
        handoffs=PeriodFigure(today=handoffs_today, last_7_days=handoffs_week),
        leads_by_stage=tuple(
            StageCount(row.pipeline_id, row.status_id, row.leads) for row in stages
        ),
        llm=LlmMonth(
            budget=budget,
            tokens_in=sum(model.tokens_in for model in usage),
            tokens_out=sum(model.tokens_out for model in usage),
            calls=sum(model.calls for model in usage),
            calls_of_unknown_cost=sum(model.calls_of_unknown_cost for model in usage),
        ),
        queue=QueueHealth(now=queue_now, jobs_last_24h=jobs),
        inbox_last_24h=inbox,
    )


def _daily(counts: queries.DailyCounts, days: list[DayBounds]) -> DailyFigure:
    return DailyFigure(
        today=counts.by_day[-1],
        last_7_days=counts.total,
        by_day=tuple(
            DayCount(day.start.date(), count)
            for day, count in zip(days, counts.by_day, strict=True)
        ),
    )
