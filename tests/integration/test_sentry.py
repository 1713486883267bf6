"""Sentry reporting against a local ingest endpoint that receives the SDK's real envelopes.

An unhandled error of the real api, expected client errors, and a job that fails for good,
each checked in what actually left the process (decompressed envelope bytes).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sentry_sdk
from pydantic import SecretStr

from agent_platform import __version__
from agent_platform.app import create_app
from agent_platform.config import Environment, Settings
from agent_platform.db.session import transaction
from agent_platform.ops.sentry import init_sentry
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.agents import api_key_of
from tests.support.factories import message_form
from tests.support.jobs import run_queued_jobs
from tests.support.sentry_receiver import SentryReceiver, stop_sentry
from tests.support.servers import serve_app

FLUSH_TIMEOUT = 10.0


@pytest.fixture
def receiver() -> Iterator[tuple[SentryReceiver, str]]:
    """(receiver, DSN pointing at it); Sentry is switched off again after the test."""
    sentry = SentryReceiver()
    with sentry.serving() as dsn:
        try:
            yield sentry, dsn
        finally:
            stop_sentry()


def reporting_to(settings: Settings, dsn: str, **overrides: Any) -> Settings:
    return settings.model_copy(update={"sentry_dsn": SecretStr(dsn)} | overrides)


def secret(prefix: str = "") -> str:
    return prefix + secrets.token_hex(16)


async def test_an_api_error_arrives_without_the_secrets_of_its_request_and_4xx_do_not(
    settings: Settings,
    services: Services,
    receiver: tuple[SentryReceiver, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sentry, dsn = receiver
    reporting = reporting_to(
        settings,
        dsn,
        environment=Environment.STAGING,
        git_sha="abc1234",
        sentry_traces_sample_rate=1.0,  # transactions carry the request too: they are checked
    )
    assert init_sentry(reporting, "api")
    path_token, query_token, bearer, cookie, api_key, password, db_password, refresh_token = (
        secret() for _ in range(8)
    )

    async def failing_accept_webhook(*_args: Any, **_kwargs: Any) -> None:
        # Locals of the failing frame are sent with it: one by its name, one by its value.
        kommo_refresh_token = refresh_token  # noqa: F841
        header = f"Bearer {bearer}"  # noqa: F841
        raise RuntimeError(f"could not reach postgresql://agent:{db_password}@db:5432/agent")

    monkeypatch.setattr("agent_platform.crm.kommo.endpoints.accept_webhook", failing_accept_webhook)
    async with transaction(services.sessions) as session:
        organization = Organization(name="Acme", slug=f"acme-{uuid.uuid4().hex[:6]}")
        session.add(organization)
    integrator = await api_key_of(services, organization.id)

    assert reporting.database_url
    with serve_app(create_app(reporting, reporting.database_url)) as api_url:
        async with httpx.AsyncClient(base_url=api_url) as api:
            probe = await api.get("/api/health/live")
            not_found = await api.get("/no-such-page")
            invalid = await api.get("/api/v1/agents/not-a-uuid", headers=integrator)
            failed = await api.post(
                f"/webhooks/kommo/{path_token}",
                params={"api_token": query_token},
                headers={
                    "Authorization": f"Bearer {bearer}",
                    "Cookie": f"ap_session={cookie}",
                    "X-Api-Key": api_key,
                },
                data=message_form("m-1", "Hello", lead_id=1) | {"account_password": password},
            )
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)

    assert (probe.status_code, not_found.status_code, invalid.status_code) == (200, 404, 422)
    assert failed.status_code == 500
    [event] = [item.payload for item in sentry.items("event")]
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert event["environment"] == "staging"
    assert event["release"] == f"agent-platform@{__version__}+abc1234"
    assert event["tags"]["service"] == "api"
    assert event["request"]["url"].endswith("/webhooks/kommo/[Filtered]")
    assert "postgresql://agent:[Filtered]@db:5432/agent" in exception["value"]
    traced = {item.payload["transaction"] for item in sentry.items("transaction")}
    assert "/webhooks/kommo/{connection_token}" in traced  # its request is checked below too
    assert "/api/health/live" not in traced  # probes are not traced
    sent = sentry.everything_sent()
    integrator_key = integrator["Authorization"].removeprefix("Bearer ")
    for leaked in (
        path_token,
        query_token,
        bearer,
        cookie,
        api_key,
        password,
        db_password,
        refresh_token,
        integrator_key,
    ):
        assert leaked.encode() not in sent


async def test_a_job_that_fails_for_good_is_reported_with_its_id_and_task(
    settings: Settings, services: Services, receiver: tuple[SentryReceiver, str]
) -> None:
    sentry, dsn = receiver
    assert init_sentry(reporting_to(settings, dsn), "worker")
    # Not an id: the job fails at once (a ValueError is not retried) with the value in its frame.
    api_key_like = secret("sk-or-v1-")
    job_id = await services.queue.configure_task(
        name="record_manager_message", queue=settings.job_queue_name
    ).defer_async(inbox_event_id=api_key_like, request_id="req-7")

    await run_queued_jobs(services)
    sentry_sdk.flush(timeout=FLUSH_TIMEOUT)

    [event] = [item.payload for item in sentry.items("event")]
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["contexts"]["job"] == {
        "id": job_id,
        "task": "record_manager_message",
        "attempts": 1,
        "queue": settings.job_queue_name,
    }
    assert event["tags"]["job.task"] == "record_manager_message"
    assert event["tags"]["job.id"] == str(job_id)
    assert event["tags"]["request_id"] == "req-7"  # of the request that deferred the job
    assert event["tags"]["service"] == "worker"
    assert api_key_like.encode() not in sentry.everything_sent()


def test_without_a_dsn_nothing_is_initialised(tmp_path: Any) -> None:
    assert not init_sentry(Settings(data_dir=tmp_path, sentry_dsn=None), "api")
    assert not init_sentry(Settings(data_dir=tmp_path, sentry_dsn=SecretStr("")), "worker")

    assert not sentry_sdk.get_client().is_active()
