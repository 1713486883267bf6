"""Figures read from PostgreSQL at scrape time: server connections, active users, live workers.

They describe the whole installation, not one process, so any api or worker answers the same.
"""

from __future__ import annotations

from datetime import timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# Dashboard users count as active while their session was seen this recently. A session's
# last_seen_at is written at most once a minute, so the figure is true to about a minute.
ACTIVE_USER_WINDOW = timedelta(minutes=5)

# Client backends only: PostgreSQL's own processes (autovacuum, WAL writer…) are listed in
# pg_stat_activity too but do not take a max_connections slot.
_CONNECTIONS = text(
    "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
    " current_setting('max_connections')::int"
)
_ACTIVE_USERS = text(
    "SELECT count(DISTINCT user_id) FROM web_sessions"
    " WHERE last_seen_at > now() - CAST(:window AS interval) AND expires_at > now()"
)
_WORKERS_ALIVE = text(
    "SELECT count(*) FROM procrastinate_workers"
    " WHERE last_heartbeat > now() - CAST(:window AS interval)"
)


async def pg_connection_families(engine: AsyncEngine) -> list[Metric]:
    async with engine.connect() as connection:
        in_use, maximum = (await connection.execute(_CONNECTIONS)).one()
    in_use_family = GaugeMetricFamily(
        "pg_connections_in_use",
        "Client connections open on the PostgreSQL server, all databases and clients.",
    )
    in_use_family.add_metric([], in_use)
    max_family = GaugeMetricFamily("pg_connections_max", "The PostgreSQL server's max_connections.")
    max_family.add_metric([], maximum)
    return [in_use_family, max_family]


async def web_active_user_families(engine: AsyncEngine) -> list[Metric]:
    async with engine.connect() as connection:
        users = await connection.scalar(_ACTIVE_USERS, {"window": ACTIVE_USER_WINDOW})
    family = GaugeMetricFamily(
        "web_active_users",
        f"Distinct users whose dashboard session was seen in the last "
        f"{ACTIVE_USER_WINDOW.total_seconds() / 60:g} minutes (to about a minute).",
    )
    family.add_metric([], users or 0)
    return [family]


async def queue_worker_families(engine: AsyncEngine, stalled_after_seconds: float) -> list[Metric]:
    """Workers whose heartbeat is newer than the time after which their jobs count as stalled."""
    async with engine.connect() as connection:
        workers = await connection.scalar(
            _WORKERS_ALIVE, {"window": timedelta(seconds=stalled_after_seconds)}
        )
    family = GaugeMetricFamily(
        "queue_workers_alive",
        "Workers with a heartbeat within JOB_STALLED_AFTER_SECONDS (procrastinate_workers).",
    )
    family.add_metric([], workers or 0)
    return [family]
