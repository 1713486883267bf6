"""Prometheus metrics of the platform and the /metrics exposition (docs/metrics.md lists them).

With PROMETHEUS_MULTIPROC_DIR set (several api processes behind one port), counters and
histograms are summed across processes by prometheus-client's multiprocess mode. Figures
read from the database and Redis at scrape time are the same whichever process answers; the
api adds the deep health check's outcome. api and worker render through the same function.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from agent_platform.crm.models import ConnectionStatus
from agent_platform.crm.repository import connections_by_status
from agent_platform.ops.database_metrics import (
    pg_connection_families,
    queue_worker_families,
    web_active_user_families,
)
from agent_platform.ops.health import Check, run_checks
from agent_platform.ops.query_metrics import untimed_queries
from agent_platform.ops.redis_metrics import redis_memory_families
from agent_platform.queue.stats import queue_figures

if TYPE_CHECKING:
    from agent_platform.services import Services

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Each figure read at scrape time gets this long; Prometheus gives a whole scrape 10 s.
SCRAPE_SOURCE_TIMEOUT_SECONDS = 3.0

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
)
JOBS_PROCESSED = Counter(
    "jobs_processed_total",
    "Jobs finished by task and outcome (succeeded, retried, failed, stalled).",
    ["task", "outcome"],
)
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time a job ran, by task.",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
WEBHOOKS_RECEIVED = Counter(
    "webhooks_received_total",
    "Webhooks received, by source and result (accepted, duplicate, rejected).",
    ["source", "result"],
)

AUTOMATION_RUNS = Counter(
    "automation_runs_total",
    "Automation runs finished, by kind (trigger, sequence_step, rule) and status.",
    ["kind", "status"],
)
AUTOMATION_RUN_DURATION = Histogram(
    "automation_run_duration_seconds",
    "Time from an automation run's start to its end (waits included), by kind.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0),
)


class _Snapshot(Collector):
    """A collector that returns metric families computed just before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


async def _queue_families(engine: AsyncEngine, queues: Sequence[str]) -> list[Metric]:
    jobs = GaugeMetricFamily(
        "queue_jobs",
        "Jobs in the queue by state: waiting (due), delayed (not yet due), active, failed.",
        labels=["queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "queue_oldest_waiting_seconds",
        "Age of the oldest job that is due and not yet started.",
        labels=["queue"],
    )
    for figures in await queue_figures(engine, queues):
        for state in ("waiting", "delayed", "active", "failed"):
            jobs.add_metric([figures.queue, state], getattr(figures, state))
        oldest.add_metric([figures.queue], figures.oldest_waiting_seconds)
    return [jobs, oldest]


async def _connection_families(engine: AsyncEngine) -> list[Metric]:
    by_status = await connections_by_status(engine)
    needing_reauth = GaugeMetricFamily(
        "kommo_connections_needing_reauth",
        "Kommo connections whose tokens Kommo refused: an admin must connect them again.",
    )
    needing_reauth.add_metric([], by_status.get(ConnectionStatus.NEEDS_REAUTH.value, 0))
    connections = GaugeMetricFamily(
        "kommo_connections", "Kommo connections by status.", labels=["status"]
    )
    for status in ConnectionStatus:
        connections.add_metric([status.value], by_status.get(status.value, 0))
    return [needing_reauth, connections]


def _pool_families(engine: AsyncEngine) -> list[Metric]:
    pool = engine.pool
    family = GaugeMetricFamily(
        "db_pool_connections",
        "Database connections of this process's pool: in use and the pool's size.",
        labels=["state"],
    )
    if isinstance(pool, QueuePool):
        family.add_metric(["in_use"], pool.checkedout())
        family.add_metric(["size"], pool.size())
    return [family]


async def _health_families(checks: Mapping[str, Check]) -> list[Metric]:
    family = GaugeMetricFamily(
        "health_check_ok",
        "1 when the deep health check's part passes at scrape time, else 0 (as /api/health).",
        labels=["check"],
    )
    for result in await run_checks(dict(checks)):
        family.add_metric([result.name], 1 if result.ok else 0)
    return [family]


async def _scraped_families(services: Services, health_checks: Mapping[str, Check]) -> list[Metric]:
    """Figures read now, concurrently; a source that fails or hangs is left out (with the
    database away there are no queue figures: health_check_ok and /api/health report that)."""
    engine, settings = services.engine, services.settings
    sources = [
        _queue_families(engine, [settings.job_queue_name]),
        _connection_families(engine),
        pg_connection_families(engine),
        web_active_user_families(engine),
        queue_worker_families(engine, settings.job_stalled_after_seconds),
    ]
    if services.redis is not None:
        sources.append(redis_memory_families(services.redis))
    pending = [asyncio.wait_for(source, SCRAPE_SOURCE_TIMEOUT_SECONDS) for source in sources]
    if health_checks:
        # Not cut short: each check has its own time limit, and a failing one must read 0.
        pending.append(_health_families(health_checks))
    families = _pool_families(engine)
    for result in await asyncio.gather(*pending, return_exceptions=True):
        if isinstance(result, list):
            families += result
        elif not isinstance(result, Exception):
            raise result
    return families


def process_registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


async def render_metrics(
    services: Services, *, health_checks: Mapping[str, Check] | None = None
) -> bytes:
    """The exposition text: this process's (or all processes') metrics, then the figures read
    at scrape time, with `health_checks`' outcomes when given (the api's)."""
    # The scrape's own SQL stays out of db_query_duration_seconds.
    with untimed_queries():
        families = await _scraped_families(services, health_checks or {})
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(families))
    return generate_latest(process_registry()) + generate_latest(snapshot)
