"""Every query of the dashboard's own figures: aggregates computed in PostgreSQL, one row (or a
handful) per figure, whatever the number of conversations.

Every query names the organization, except the queue's (`finished_jobs`): the job queue is
shared by all organizations and its jobs carry no organization column.

Days are passed in as [start, end) bounds already computed in the organization's time zone
(dashboard.figures), so daylight-saving days of 23 or 25 hours count right and the database
needs no time zone of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

# The idempotency keys of what the agent writes to a customer: the reply to a message (or the
# out-of-hours message in its place, agent.service.reply_key) and the follow-up
# (agent.follow_up.FollowUp.delivery_key). Notes, tasks and automation's messages have others.
REPLY_KEY_PREFIX = "reply:"
FOLLOW_UP_KEY_PREFIX = "follow_up:"

# The messages that make a conversation active and that close a customer's turn: tool and
# system messages are the agent's own bookkeeping.
_CONVERSING_ROLES = "('user', 'assistant', 'manager')"


@dataclass(frozen=True)
class DayBounds:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class DailyCounts:
    by_day: tuple[int, ...]  # one count per DayBounds asked, in the same order
    total: int  # over all the days: not the sum where one thing counts on several days


@dataclass(frozen=True)
class StageRow:
    pipeline_id: int | None
    status_id: int | None
    leads: int


@dataclass(frozen=True)
class ResponseTimes:
    median_seconds: float | None  # None when no message was answered
    answered_messages: int


@dataclass(frozen=True)
class FailureRate:
    failed: int
    total: int

    @property
    def ratio(self) -> float | None:
        return None if self.total == 0 else self.failed / self.total


def _days_parameters(days: Sequence[DayBounds]) -> dict[str, list[datetime]]:
    return {"starts": [day.start for day in days], "ends": [day.end for day in days]}


# One row per day that has any, and the grand total (day_index NULL) over the whole window.
_DAYS = """
    unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
        WITH ORDINALITY AS d(day_start, day_end, day_index)
"""


def _daily_counts(rows: Sequence[tuple[int | None, int]], days: int) -> DailyCounts:
    by_index = dict(rows)
    return DailyCounts(
        by_day=tuple(by_index.get(index, 0) for index in range(1, days + 1)),
        total=by_index.get(None, 0),
    )


_ACTIVE_CONVERSATIONS = text(
    f"""
    SELECT d.day_index, count(DISTINCT m.conversation_id)
      FROM {_DAYS}
      JOIN messages m
        ON m.organization_id = :organization_id
       AND m.role IN {_CONVERSING_ROLES}
       AND m.created_at >= d.day_start AND m.created_at < d.day_end
     GROUP BY GROUPING SETS ((d.day_index), ())
    """  # noqa: S608 - constants, no input
)


async def active_conversations(
    session: AsyncSession, organization_id: uuid.UUID, days: Sequence[DayBounds]
) -> DailyCounts:
    """Conversations in which the customer, the agent or a manager wrote, by day."""
    rows = await session.execute(
        _ACTIVE_CONVERSATIONS, {"organization_id": organization_id, **_days_parameters(days)}
    )
    return _daily_counts([(row[0], row[1]) for row in rows], len(days))


_REPLIES_SENT = text(
    f"""
    SELECT d.day_index, count(r.id)
      FROM {_DAYS}
      JOIN crm_deliveries r
        ON r.organization_id = :organization_id
       AND r.status = 'sent'
       AND (r.idempotency_key LIKE '{REPLY_KEY_PREFIX}%'
            OR r.idempotency_key LIKE '{FOLLOW_UP_KEY_PREFIX}%')
       AND r.sent_at >= d.day_start AND r.sent_at < d.day_end
     GROUP BY GROUPING SETS ((d.day_index), ())
    """  # noqa: S608 - constants, no input
)


async def replies_sent(
    session: AsyncSession, organization_id: uuid.UUID, days: Sequence[DayBounds]
) -> DailyCounts:
    """The agent's replies and follow-ups Kommo accepted, by the day they were sent."""
    rows = await session.execute(
        _REPLIES_SENT, {"organization_id": organization_id, **_days_parameters(days)}
    )
    return _daily_counts([(row[0], row[1]) for row in rows], len(days))


_HANDOFFS = text(
    """
    SELECT count(*) FILTER (WHERE handed_off_at >= :today_start) AS today,
           count(*) AS in_window
      FROM conversations
     WHERE organization_id = :organization_id
       AND handed_off_at >= :since AND handed_off_at < :until
    """
)


async def handoffs(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    today_start: datetime,
    since: datetime,
    until: datetime,
) -> tuple[int, int]:
    """(today, since..until): conversations whose latest handoff to a person falls there."""
    row = (
        await session.execute(
            _HANDOFFS,
            {
                "organization_id": organization_id,
                "today_start": today_start,
                "since": since,
                "until": until,
            },
        )
    ).one()
    return row.today, row.in_window


# A customer's message is dated when its inbox event was received
# (conversation.repository.record_customer_message), so the inbox is not read again here.
# A customer's turn: their messages since the conversation's last assistant or manager message.
# The reply to a message covers it and every earlier message of the turn still waiting
# (agent.reply_state.covered_by_reply_to), so a message is answered by the earliest reply sent
# that is keyed to it or to a later message of its turn.
_RESPONSE_TIMES = text(
    f"""
    WITH conversing AS (
        SELECT m.conversation_id, m.role, m.created_at, m.id,
               '{REPLY_KEY_PREFIX}' || m.inbox_event_id::text AS reply_key,
               count(*) FILTER (WHERE m.role <> 'user')
                   OVER (PARTITION BY m.conversation_id ORDER BY m.created_at, m.id) AS turn
          FROM messages m
         WHERE m.organization_id = :organization_id
           AND m.role IN {_CONVERSING_ROLES}
           AND m.created_at >= :since AND m.created_at < :until
    ), customer AS (
        -- A reply is sent after the message it answers, so only the deliveries sent since
        -- `since` can answer one: a range of ix_crm_deliveries_org_sent_at, joined by key in
        -- one pass (a lookup per message costs thousands of index probes on a busy week).
        SELECT c.conversation_id, c.turn, c.created_at, c.id, r.sent_at AS reply_sent_at
          FROM conversing c
          LEFT JOIN crm_deliveries r
                 ON r.idempotency_key = c.reply_key
                AND r.organization_id = :organization_id
                AND r.status = 'sent'
                AND r.sent_at >= :since
         WHERE c.role = 'user' AND c.reply_key IS NOT NULL
    ), answered AS (
        SELECT created_at AS received_at,
               min(reply_sent_at) OVER (
                   PARTITION BY conversation_id, turn ORDER BY created_at, id
                   ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING
               ) AS answered_at
          FROM customer
    )
    SELECT percentile_cont(0.5) WITHIN GROUP (
               ORDER BY extract(epoch FROM answered_at - received_at)
           ) AS median_seconds,
           count(*) AS answered
      FROM answered
     WHERE answered_at < :until
    """  # noqa: S608 - constants, no input
)


async def response_times(
    session: AsyncSession, organization_id: uuid.UUID, *, since: datetime, until: datetime
) -> ResponseTimes:
    """Median time from a customer's message (received since..until) to the reply that
    answered it, over the messages answered before `until`."""
    row = (
        await session.execute(
            _RESPONSE_TIMES, {"organization_id": organization_id, "since": since, "until": until}
        )
    ).one()
    median = None if row.median_seconds is None else float(row.median_seconds)
    return ResponseTimes(median_seconds=median, answered_messages=row.answered)


# The snapshot keeps facts as Kommo sent them: a number, or anything else when Kommo's
# payload was odd; only numbers name a stage.
_STAGES = text(
    f"""
    SELECT CASE WHEN jsonb_typeof(s.facts -> 'pipeline_id') = 'number'
                THEN (s.facts ->> 'pipeline_id')::numeric::bigint END AS pipeline_id,
           CASE WHEN jsonb_typeof(s.facts -> 'status_id') = 'number'
                THEN (s.facts ->> 'status_id')::numeric::bigint END AS status_id,
           count(*) AS leads
      FROM conversations c
      LEFT JOIN automation_lead_snapshots s
             ON s.organization_id = c.organization_id
            AND s.connection_id = c.connection_id
            AND s.lead_id = c.entity_id
     WHERE c.organization_id = :organization_id
       AND c.entity_type = 'leads'
       AND c.id IN (SELECT m.conversation_id
                      FROM messages m
                     WHERE m.organization_id = :organization_id
                       AND m.role IN {_CONVERSING_ROLES}
                       AND m.created_at >= :since AND m.created_at < :until)
     GROUP BY 1, 2
     ORDER BY leads DESC, pipeline_id NULLS LAST, status_id NULLS LAST
    """  # noqa: S608 - constants, no input
)


async def leads_by_stage(
    session: AsyncSession, organization_id: uuid.UUID, *, since: datetime, until: datetime
) -> list[StageRow]:
    """The leads whose conversation was active since..until, by their stage as the last lead
    webhook showed it (automation_lead_snapshots.facts); no stage when none came."""
    rows = await session.execute(
        _STAGES, {"organization_id": organization_id, "since": since, "until": until}
    )
    return [StageRow(row.pipeline_id, row.status_id, row.leads) for row in rows]


_INBOX_FAILURES = text(
    """
    SELECT count(*) FILTER (WHERE status = 'failed') AS failed, count(*) AS received
      FROM inbox_events
     WHERE organization_id = :organization_id
       AND received_at >= :since AND received_at < :until
    """
)


async def inbox_failures(
    session: AsyncSession, organization_id: uuid.UUID, *, since: datetime, until: datetime
) -> FailureRate:
    """Webhook events received since..until, and those of them a job gave up on."""
    row = (
        await session.execute(
            _INBOX_FAILURES, {"organization_id": organization_id, "since": since, "until": until}
        )
    ).one()
    return FailureRate(failed=row.failed, total=row.received)


# A job's end is its last `failed`, `succeeded` or `aborted` event: a job retried by hand
# fails (or succeeds) again and counts once, by how it ended last. Cancelled jobs never ran.
_FINISHED_JOBS = text(
    """
    SELECT count(*) FILTER (WHERE ended.type = 'failed') AS failed, count(*) AS finished
      FROM (SELECT DISTINCT ON (e.job_id) e.type, e.at
              FROM procrastinate_events e
              JOIN procrastinate_jobs j ON j.id = e.job_id
             WHERE j.queue_name = :queue
               AND e.type IN ('failed', 'succeeded', 'aborted')
               AND e.at >= :since AND e.at < :until
             ORDER BY e.job_id, e.at DESC, e.id DESC) AS ended
    """
)


async def finished_jobs(
    engine: AsyncEngine, queue: str, *, since: datetime, until: datetime
) -> FailureRate:
    """Jobs of the queue that finished since..until, and those that failed: every
    organization's, since the queue is shared."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                _FINISHED_JOBS, {"queue": queue, "since": since, "until": until}
            )
        ).one()
    return FailureRate(failed=row.failed, total=row.finished)
