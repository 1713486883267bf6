"""`up --demo` seeding: reused from its own DATA_DIR, never wiped by another instance, and its
connection's webhook subscribed in the Kommo sandbox on every start."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agent_platform.crm.kommo.webhook_subscription import WEBHOOK_SETTINGS
from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.db.session import transaction
from agent_platform.demo import seed_demo
from agent_platform.kit.failures import StartupRefusedError
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.jobs import run_queued_jobs
from tests.support.sandbox_webhooks import sandbox_webhooks
from tests.support.servers import serve_app

URLS = {"api_url": "http://127.0.0.1:1", "kommo_base_url": "http://127.0.0.1:2"}


async def test_the_same_data_dir_gets_the_same_demo_back(services: Services) -> None:
    first = await seed_demo(services, **URLS, kommo_access_token="t")
    again = await seed_demo(
        services,
        api_url="http://127.0.0.1:3",
        kommo_base_url="http://127.0.0.1:4",
        kommo_access_token="t",
    )
    assert (again.api_key, again.admin_password, again.agent_id) == (
        first.api_key,
        first.admin_password,
        first.agent_id,
    )
    assert again.webhook_url.startswith("http://127.0.0.1:3/webhooks/kommo/")


async def test_another_instance_on_the_same_database_is_refused_and_nothing_is_deleted(
    services: Services, tmp_path: Path
) -> None:
    await seed_demo(services, **URLS, kommo_access_token="t")
    other_instance = services.settings.model_copy(update={"data_dir": tmp_path / "other"})
    with pytest.raises(StartupRefusedError, match="already holds a demo organization"):
        await seed_demo(
            dataclasses.replace(services, settings=other_instance),
            **URLS,
            kommo_access_token="t",
        )
    async with transaction(services.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(Organization)) == 1


async def test_the_demo_connection_subscribes_its_webhook_in_the_sandbox_on_every_start(
    services: Services, sandbox: tuple[str, str]
) -> None:
    sandbox_url, token = sandbox
    first = await seed_demo(
        services, api_url="http://127.0.0.1:1", kommo_base_url=sandbox_url, kommo_access_token=token
    )
    await run_queued_jobs(services)

    [webhook] = await sandbox_webhooks(sandbox_url, token)
    assert webhook["destination"] == first.webhook_url
    assert webhook["settings"] == list(WEBHOOK_SETTINGS)

    # The next start: a new sandbox (it keeps nothing) and the api on another port.
    with serve_app(create_sandbox_app(token)) as restarted_sandbox_url:
        again = await seed_demo(
            services,
            api_url="http://127.0.0.1:3",
            kommo_base_url=restarted_sandbox_url,
            kommo_access_token=token,
        )
        await run_queued_jobs(services)

        [webhook] = await sandbox_webhooks(restarted_sandbox_url, token)
    assert webhook["destination"] == again.webhook_url
    assert again.webhook_url.startswith("http://127.0.0.1:3/webhooks/kommo/")
