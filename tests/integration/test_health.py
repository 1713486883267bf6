"""Health and metrics of the api and the worker, including while PostgreSQL is away."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from pgserver.utils import PostmasterInfo
from prometheus_client.parser import text_string_to_metric_families

from agent_platform.config import Settings
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.embedded import start_embedded_postgres
from agent_platform.db.migrate import alembic_config
from agent_platform.services import open_services
from tests.conftest import free_port, make_settings
from tests.support.factories import ConnectedAgent, create_connected_agent, message_form
from tests.support.processes import (
    RunningProcess,
    eventually,
    eventually_async,
    pg_ctl,
    running,
    settings_env,
    stop_leftover_postgres,
)

API_CHECKS = {"database", "queue", "migrations"}
# Longer than any single check may take (3 s), so a hanging endpoint fails the request.
HTTP_TIMEOUT = 10.0
START_TIMEOUT = 60.0
STATE_TIMEOUT = 30.0


def samples(exposition: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a Prometheus text exposition, by sample name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def families(exposition: str) -> dict[str, str]:
    """Metric family name -> type."""
    return {f.name: f.type for f in text_string_to_metric_families(exposition)}


def value(exposition: str, name: str, **labels: str) -> float | None:
    for sample_labels, sample_value in samples(exposition).get(name, []):
        if all(sample_labels.get(key) == wanted for key, wanted in labels.items()):
            return sample_value
    return None


def assert_check_shape(check: dict[str, Any]) -> None:
    assert check["status"] in ("ok", "failing")
    assert isinstance(check["latency_ms"], int | float)
    assert check["latency_ms"] >= 0
    assert "detail" in check


async def test_health_reports_every_check_with_status_and_latency(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=HTTP_TIMEOUT) as client:
        response = await client.get("/api/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    # No REDIS_URL: no redis check (Redis is optional, not failing).
    assert set(body["checks"]) == API_CHECKS
    for check in body["checks"].values():
        assert_check_shape(check)
        assert check["status"] == "ok"


async def test_liveness_answers_without_deep_checks(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=HTTP_TIMEOUT) as client:
        response = await client.get("/api/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_metrics_expose_http_job_and_queue_figures(
    api_url: str, connected: ConnectedAgent
) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=HTTP_TIMEOUT) as client:
        assert (await client.get("/api/health")).status_code == 200
        # No worker runs here: the webhook's job stays waiting in the queue.
        webhook = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("metrics-1", "Hi", lead_id=DEMO_LEAD_ID),
        )
        assert webhook.json()["accepted"] == 1

        async def scrape() -> str:
            response = await client.get("/metrics")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            return response.text

        # A request is counted as it ends, so the health request may trail the scrape a little.
        exposition = await scrape()
        for _ in range(50):
            if value(exposition, "http_requests_total", route="/api/health", status="200"):
                break
            exposition = await scrape()

    assert value(exposition, "http_requests_total", route="/api/health", method="GET", status="200")
    assert value(
        exposition,
        "http_requests_total",
        route="/webhooks/kommo/{connection_token}",
        method="POST",
        status="200",
    )
    # Route templates, never raw paths: the webhook token must not become a label value.
    assert connected.webhook_token not in exposition
    assert value(
        exposition, "http_request_duration_seconds_count", route="/api/health", method="GET"
    )
    kinds = families(exposition)
    assert kinds["http_requests"] == "counter"
    assert kinds["http_request_duration_seconds"] == "histogram"
    assert kinds["jobs_processed"] == "counter"
    assert kinds["job_duration_seconds"] == "histogram"
    assert kinds["webhooks_received"] == "counter"
    assert value(exposition, "webhooks_received_total", source="kommo", result="accepted")
    assert value(exposition, "queue_jobs", queue="agent-jobs", state="waiting") == 1
    for state in ("delayed", "active", "failed"):
        assert value(exposition, "queue_jobs", queue="agent-jobs", state=state) == 0
    oldest = value(exposition, "queue_oldest_waiting_seconds", queue="agent-jobs")
    assert oldest is not None
    assert oldest >= 0
    assert value(exposition, "db_pool_connections", state="size") is not None


async def test_an_empty_queue_is_reported_as_zero(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url, timeout=HTTP_TIMEOUT) as client:
        exposition = (await client.get("/metrics")).text
    for state in ("waiting", "delayed", "active", "failed"):
        assert value(exposition, "queue_jobs", queue="agent-jobs", state=state) == 0, state
    assert value(exposition, "queue_oldest_waiting_seconds", queue="agent-jobs") == 0


async def test_worker_serves_health_and_metrics(
    settings: Settings,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    tmp_path: Path,
) -> None:
    worker_url = f"http://127.0.0.1:{settings.worker_health_port}"

    def worker_health() -> httpx.Response | None:
        try:
            response = httpx.get(f"{worker_url}/health", timeout=HTTP_TIMEOUT)
        except httpx.TransportError:
            return None
        return response if response.status_code == 200 else None

    with running(["worker"], env=settings_env(settings), cwd=tmp_path, name="worker") as worker:
        health = await eventually_async(
            worker_health,
            within=START_TIMEOUT,
            message=lambda: "the worker never reported healthy: " + worker.describe(),
        )
        body = health.json()
        assert body["status"] == "ok"
        assert {name: check["status"] for name, check in body["checks"].items()} == {
            "event_loop": "ok",
            "database": "ok",
        }
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{worker_url}/nothing")).status_code == 404

        async with httpx.AsyncClient(base_url=api_url) as client:
            webhook = await client.post(
                f"/webhooks/kommo/{connected.webhook_token}",
                data=message_form("worker-metrics-1", "Hi", lead_id=DEMO_LEAD_ID),
            )
        assert webhook.json()["accepted"] == 1

        def processed() -> str | None:
            response = httpx.get(f"{worker_url}/metrics", timeout=HTTP_TIMEOUT)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
            done = value(
                response.text,
                "jobs_processed_total",
                task="answer_incoming_message",
                outcome="succeeded",
            )
            return response.text if done == 1 else None

        exposition = await eventually_async(
            processed,
            within=STATE_TIMEOUT,
            message=lambda: "no succeeded job in the worker's metrics: " + worker.describe(),
        )
        assert value(exposition, "job_duration_seconds_count", task="answer_incoming_message") == 1
        assert families(exposition)["queue_jobs"] == "gauge"
        assert worker.stop(signal.SIGTERM) == 0, worker.describe()


# --- PostgreSQL goes away and comes back ------------------------------------------------------


@pytest.fixture
def private_postgres(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(PGDATA, URL) of a PostgreSQL of this test's own, migrated, that the test may stop."""
    embedded = start_embedded_postgres(tmp_path / "pg")
    pgdata = (tmp_path / "pg" / "postgres").resolve()
    try:
        command.upgrade(alembic_config(embedded.url), "head")
        yield pgdata, embedded.url
    finally:
        embedded.stop()
        stop_leftover_postgres(pgdata)  # the test restarted it: pgserver no longer knows it


def get_json(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT)
    except httpx.TransportError:
        return None
    return response.status_code, response.json()


def connect_agent(settings: Settings, sandbox: tuple[str, str]) -> ConnectedAgent:
    async def create() -> ConnectedAgent:
        assert settings.database_url
        async with open_services(settings, settings.database_url) as services:
            return await create_connected_agent(
                services, kommo_url=sandbox[0], kommo_token=sandbox[1]
            )

    return asyncio.run(create())


def test_health_follows_the_database_down_and_back(
    private_postgres: tuple[Path, str],
    tmp_path: Path,
    sandbox: tuple[str, str],
    fake_llm_url: str,
) -> None:
    pgdata, database_url = private_postgres
    api_port = free_port()
    settings = make_settings(database_url, tmp_path / "data", fake_llm_url)
    connected = connect_agent(settings, sandbox)
    env = settings_env(settings)
    worker_port = settings.worker_health_port
    health_url = f"http://127.0.0.1:{api_port}/api/health"
    worker_url = f"http://127.0.0.1:{worker_port}/health"

    def status_is(url: str, process: RunningProcess, status: int) -> dict[str, Any] | None:
        assert process.popen.poll() is None, "the process died: " + process.describe()
        answer = get_json(url)
        return answer[1] if answer is not None and answer[0] == status else None

    with (
        running(["api", "--port", str(api_port)], env=env, cwd=tmp_path, name="api") as api,
        running(["worker"], env=env, cwd=tmp_path, name="worker") as worker,
    ):
        api.wait_for_stdout("GPT Agent Platform is running at", timeout=START_TIMEOUT)
        eventually(lambda: status_is(health_url, api, 200), within=STATE_TIMEOUT)
        eventually(lambda: status_is(worker_url, worker, 200), within=START_TIMEOUT)

        info = PostmasterInfo.read_from_pgdata(pgdata)
        assert info is not None
        assert info.socket_dir is not None
        socket_dir = info.socket_dir
        pg_ctl(pgdata, "-w", "-m", "fast", "stop")
        try:
            down = eventually(
                lambda: status_is(health_url, api, 503),
                within=STATE_TIMEOUT,
                message=lambda: "the api did not report the database down: " + api.describe(),
            )
            assert down["status"] == "failing"
            assert set(down["checks"]) == API_CHECKS
            for check in down["checks"].values():
                assert_check_shape(check)
            assert down["checks"]["database"]["status"] == "failing"
            assert down["checks"]["database"]["detail"]
            worker_down = eventually(
                lambda: status_is(worker_url, worker, 503),
                within=STATE_TIMEOUT,
                message=lambda: "the worker did not report the database down: " + worker.describe(),
            )
            assert worker_down["checks"]["database"]["status"] == "failing"
            assert worker_down["checks"]["event_loop"]["status"] == "ok"
            live = httpx.get(f"http://127.0.0.1:{api_port}/api/health/live", timeout=HTTP_TIMEOUT)
            assert live.status_code == 200
        finally:
            # Same socket directory as pgserver gave it, so the URL the processes hold works.
            pg_ctl(
                pgdata,
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {socket_dir}",
                "-l",
                str(pgdata / "log"),
                "start",
            )

        back = eventually(
            lambda: status_is(health_url, api, 200),
            within=STATE_TIMEOUT,
            message=lambda: "the api did not recover: " + api.describe(),
        )
        assert {name: check["status"] for name, check in back["checks"].items()} == dict.fromkeys(
            API_CHECKS, "ok"
        )
        eventually(
            lambda: status_is(worker_url, worker, 200),
            within=STATE_TIMEOUT,
            message=lambda: "the worker did not recover: " + worker.describe(),
        )

        # The worker outlived the outage: a message that arrives now is still answered.
        webhook = httpx.post(
            f"http://127.0.0.1:{api_port}/webhooks/kommo/{connected.webhook_token}",
            data=message_form("after-outage-1", "Are you there?", lead_id=DEMO_LEAD_ID),
            timeout=HTTP_TIMEOUT,
        )
        assert webhook.status_code == 200, webhook.text
        notes = eventually(
            lambda: httpx.get(f"{sandbox[0]}/sandbox/notes").json()["notes"] or None,
            within=STATE_TIMEOUT,
            message=lambda: "the worker did not answer after the outage: " + worker.describe(),
        )
        assert len(notes) == 1
        assert api.stop(signal.SIGTERM) == 0, api.describe()
        assert worker.stop(signal.SIGTERM) == 0, worker.describe()
