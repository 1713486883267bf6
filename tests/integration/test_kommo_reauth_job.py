"""A reply job meets a revoked Kommo grant: the connection says `needs_reauth`, the metric
counts it, the job fails once without retrying, and Kommo hears nothing more of the account."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text, update

from agent_platform.agent.models import Agent
from agent_platform.config import Settings
from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import read_webhook
from agent_platform.crm.models import CrmConnection, InboxEvent
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.ops.metrics import render_metrics
from agent_platform.services import Services, open_services
from tests.support.factories import message_form
from tests.support.kommo_oauth import (
    api_arrivals,
    connect_by_oauth,
    connection_row,
    create_organization,
    grants,
    oauth_overrides,
    register_integration,
    set_token_expiry,
    switch_faults,
)
from tests.support.worker import running_worker

DEADLINE_SECONDS = 30.0


@pytest.fixture
async def oauth_services(settings: Settings, sandbox: tuple[str, str]) -> AsyncIterator[Services]:
    register_integration(sandbox[0])
    configured = settings.model_copy(update=oauth_overrides(sandbox[0]))
    assert configured.database_url
    async with open_services(configured, configured.database_url) as opened:
        yield opened


@pytest.fixture
async def worker(oauth_services: Services) -> AsyncIterator[None]:
    async with running_worker(oauth_services):
        yield


async def receive(services: Services, webhook_token: str, message_id: str) -> None:
    form = message_form(message_id, "Hello?", lead_id=DEMO_LEAD_ID)
    async with transaction(services.sessions) as session:
        await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=webhook_token,
            webhook=read_webhook(form.items()),
        )


async def inbox(services: Services, message_id: str) -> tuple[str, str | None] | None:
    async with transaction(services.sessions) as session:
        row = (
            await session.execute(
                select(InboxEvent.status, InboxEvent.error).where(
                    InboxEvent.dedupe_key == f"message:{message_id}"
                )
            )
        ).first()
    return (row.status, row.error) if row else None


async def subscribed(services: Services, connection_id: uuid.UUID) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while (await connection_row(services, connection_id)).webhook_subscribed_at is None:
        assert loop.time() < deadline, "our webhook was not subscribed"
        await asyncio.sleep(0.1)


async def settled(services: Services, message_id: str) -> tuple[str, str | None]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        found = await inbox(services, message_id)
        if found is not None and found[0] != "pending":
            return found
        assert loop.time() < deadline, f"message {message_id} stayed pending"
        await asyncio.sleep(0.1)


async def test_a_revoked_grant_stops_the_connections_replies(
    oauth_services: Services, sandbox: tuple[str, str], worker: None
) -> None:
    services = oauth_services
    organization_id, _ = await create_organization(services)
    connection_id = await connect_by_oauth(services, organization_id)
    # Connecting queues our webhook's subscription: let it finish before the grant is revoked.
    await subscribed(services, connection_id)
    async with transaction(services.sessions) as session:
        agent = Agent(
            organization_id=organization_id, name="Agent", instructions="Sell.", model="test/model"
        )
        session.add(agent)
        await session.flush()
        await session.execute(
            update(CrmConnection).where(CrmConnection.id == connection_id).values(agent_id=agent.id)
        )
    webhook_token = (await connection_row(services, connection_id)).webhook_token
    switch_faults(sandbox[0], revoke_tokens=True)
    await set_token_expiry(services, connection_id, datetime.now(UTC) - timedelta(minutes=1))
    arrivals_before = len(api_arrivals(sandbox[0]))

    await receive(services, webhook_token, "m-1")

    status, error = await settled(services, "m-1")
    assert status == "failed"
    assert error is not None
    assert "re-authorization" in error
    assert (await connection_row(services, connection_id)).status == "needs_reauth"
    exposition = (await render_metrics(services)).decode()
    assert "kommo_connections_needing_reauth 1.0" in exposition
    async with transaction(services.sessions) as session:
        jobs = (
            await session.execute(
                text(
                    "SELECT status, attempts FROM procrastinate_jobs "
                    "WHERE task_name = 'answer_incoming_message'"
                )
            )
        ).all()
    assert [tuple(job) for job in jobs] == [("failed", 1)]  # not retried for minutes

    # A later message is kept but not worked on; Kommo is not called for it.
    await receive(services, webhook_token, "m-2")
    assert (await settled(services, "m-2"))[0] == "ignored"
    assert len(api_arrivals(sandbox[0])) == arrivals_before
    assert [g["grant_type"] for g in grants(sandbox[0])] == ["authorization_code", "refresh_token"]
    async with httpx.AsyncClient() as client:
        notes = (await client.get(f"{sandbox[0]}/sandbox/notes")).json()["notes"]
    assert notes == []
