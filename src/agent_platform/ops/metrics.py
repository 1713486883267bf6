"""Prometheus metrics of the platform and the /metrics exposition.

With PROMETHEUS_MULTIPROC_DIR set (several api processes behind one port), counters and
histograms are summed across processes by prometheus-client's multiprocess mode. Figures
read from the database at scrape time (queue, pool) are the same whichever process answers.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Sequence

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
from agent_platform.queue.stats import queue_figures

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

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


def process_registry() -> CollectorRegistry:
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


async def render_metrics(engine: AsyncEngine, queues: Sequence[str]) -> bytes:
    """The exposition text: this process's (or all processes') metrics, then database figures."""
    snapshot = CollectorRegistry()
    families = _pool_families(engine)
    # With the database away the queue figures are left out: /api/health reports that.
    with contextlib.suppress(Exception):
        families += await _queue_families(engine, queues)
    with contextlib.suppress(Exception):
        families += await _connection_families(engine)
    snapshot.register(_Snapshot(families))
    return generate_latest(process_registry()) + generate_latest(snapshot)
