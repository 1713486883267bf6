"""The figures /metrics exports mean what they say: scraped from a real api and a real worker,
parsed as Prometheus parses them, compared with what the database and Redis say themselves.
Every family either process exports is documented in docs/metrics.md."""

from __future__ import annotations

import secrets
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import create_engine, transaction
from agent_platform.db.urls import libpq_url
from agent_platform.ops.endpoints import api_checks
from agent_platform.ops.metrics import render_metrics
from agent_platform.organization.models import WebSession
from agent_platform.services import Services
from tests.conftest import free_port, make_settings
from tests.support.factories import ConnectedAgent, message_form
from tests.support.people import create_member, create_person
from tests.support.processes import RunningProcess, eventually_awaited, running, settings_env
from tests.support.servers import serve_app
from tests.support.web_client import signed_in
from tests.unit.test_metrics_docs import undocumented

HTTP_TIMEOUT = 10.0


def read(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of every sample."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def value(exposition: str, name: str, **labels: str) -> float | None:
    return read(exposition).get((name, frozenset(labels.items())))


def family_types(exposition: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(exposition)}


async def scrape(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(url, timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.text


async def waited_for(
    probe: Callable[[], Awaitable[str | None]], what: str, worker: RunningProcess
) -> str:
    """The worker's exposition once `probe` finds `what` in it; else what the worker said."""
    try:
        return await eventually_awaited(probe, f"{what} in the worker's metrics", within=60)
    except AssertionError as missing:
        raise AssertionError(f"{missing}\n{worker.describe()}") from None


def query_count(exposition: str) -> float:
    counted = value(exposition, "db_query_duration_seconds_count")
    assert counted is not None, "no db_query_duration_seconds in the exposition"
    return counted


async def test_the_api_exports_users_connections_queries_and_health(
    api_url: str, services: Services, database_server_url: str
) -> None:
    person = await create_person(services)
    # Signed in 10 minutes ago and not seen since: not an active user any more.
    absent = await create_member(services, person.organization_id)
    long_ago = datetime.now(UTC) - timedelta(minutes=10)
    async with transaction(services.sessions) as session:
        session.add(
            WebSession(
                organization_id=person.organization_id,
                user_id=absent.user_id,
                token_hash=secrets.token_hex(32),
                csrf_token=secrets.token_hex(16),
                last_seen_at=long_ago,
                expires_at=long_ago + timedelta(days=7),
            )
        )
    # Connections to another database are counted too: the figure is the server's.
    with psycopg.connect(libpq_url(database_server_url)) as elsewhere:
        shown = elsewhere.execute("SHOW max_connections").fetchone()
        assert shown is not None
        maximum = int(shown[0])
        async with signed_in(api_url, person) as browser:
            exposition = await scrape(browser, "/metrics")
            # Scrapes run SQL of their own, but do not count it: a second one reads the same.
            before = query_count(await scrape(browser, "/metrics"))
            assert before == query_count(exposition)
            assert (await browser.get("/app")).status_code == 200
            after = query_count(await scrape(browser, "/metrics"))

    assert value(exposition, "web_active_users") == 1
    assert value(exposition, "pg_connections_max") == maximum
    in_use = value(exposition, "pg_connections_in_use")
    assert in_use is not None
    assert 2 <= in_use <= maximum  # the api's own and this test's other one, at least
    assert after > before, "the dashboard page's SQL was not timed"
    assert value(exposition, "db_query_duration_seconds_bucket", le="0.1") is not None
    assert family_types(exposition)["db_query_duration_seconds"] == "histogram"
    assert {
        check: value(exposition, "health_check_ok", check=check)
        for check in ("database", "queue", "migrations", "redis")
    } == {"database": 1, "queue": 1, "migrations": 1, "redis": None}  # no REDIS_URL, no check
    assert value(exposition, "queue_workers_alive") == 0  # no worker runs here
    assert value(exposition, "redis_memory_used_bytes") is None
    assert undocumented(exposition) == []


async def test_with_the_database_away_its_figures_are_left_out_and_health_reads_0(
    services: Services,
) -> None:
    # Nothing listens on a free port: connecting fails as it does while PostgreSQL is down.
    away = replace(
        services, engine=create_engine(f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    )
    try:
        exposition = (await render_metrics(away, health_checks=api_checks(away))).decode()
    finally:
        await away.engine.dispose()

    assert {
        check: value(exposition, "health_check_ok", check=check)
        for check in ("database", "queue", "migrations")
    } == {"database": 0, "queue": 0, "migrations": 0}
    families = family_types(exposition)
    for figure in (
        "queue_jobs",
        "pg_connections_in_use",
        "web_active_users",
        "queue_workers_alive",
    ):
        assert figure not in families, figure
    assert value(exposition, "process_cpu_seconds_total") is not None


@pytest.fixture
def api_with_redis_url(
    clean_database: str, fake_llm_url: str, redis_url: str, tmp_path: Path
) -> Iterator[str]:
    settings = make_settings(clean_database, tmp_path / "data", fake_llm_url, redis_url=redis_url)
    with serve_app(create_app(settings, clean_database)) as url:
        yield url


async def test_redis_memory_is_read_from_info(api_with_redis_url: str, redis_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_with_redis_url) as client:
        exposition = await scrape(client, "/metrics")
    with Redis.from_url(redis_url) as redis:
        limit = int(redis.config_get("maxmemory")["maxmemory"])
    assert value(exposition, "redis_memory_max_bytes") == limit
    used = value(exposition, "redis_memory_used_bytes")
    assert used is not None
    assert used > 0
    if limit:
        assert used <= limit
    assert value(exposition, "health_check_ok", check="redis") == 1


async def test_the_worker_exports_process_job_queue_and_query_figures(
    settings: Settings,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    tmp_path: Path,
) -> None:
    metrics_url = f"http://127.0.0.1:{settings.worker_health_port}/metrics"
    with running(["worker"], env=settings_env(settings), cwd=tmp_path, name="worker") as worker:
        async with httpx.AsyncClient() as client:

            async def alive() -> str | None:
                try:
                    exposition = await scrape(client, metrics_url)
                except httpx.TransportError:
                    return None
                return exposition if value(exposition, "queue_workers_alive") == 1 else None

            idle = await waited_for(alive, "queue_workers_alive 1", worker)
            webhook = await client.post(
                f"{api_url}/webhooks/kommo/{connected.webhook_token}",
                data=message_form("worker-metrics", "Hi", lead_id=DEMO_LEAD_ID),
            )
            assert webhook.json()["accepted"] == 1

            async def answered() -> str | None:
                exposition = await scrape(client, metrics_url)
                done = value(
                    exposition,
                    "jobs_processed_total",
                    task="answer_incoming_message",
                    outcome="succeeded",
                )
                return exposition if done == 1 else None

            busy = await waited_for(answered, "the job succeeded", worker)
        assert worker.stop(signal.SIGTERM) == 0, worker.describe()

    assert value(busy, "job_duration_seconds_count", task="answer_incoming_message") == 1
    assert query_count(busy) > query_count(idle), "the job's SQL was not timed"
    assert value(busy, "process_cpu_seconds_total") is not None
    assert value(busy, "process_resident_memory_bytes") is not None
    assert value(busy, "queue_jobs", queue="agent-jobs", state="waiting") == 0
    assert value(busy, "queue_workers_alive") == 1
    assert value(busy, "web_active_users") == 0
    assert "health_check_ok" not in family_types(busy)  # the api's figure
    assert undocumented(busy) == []
