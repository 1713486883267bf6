"""Reconnecting an account after an outage answers the customers still waiting, once each.

While Kommo refused the connection's tokens, customers' messages were kept and not answered.
When the admin connects the account again, each lead whose newest message is a recent,
unanswered one from the customer gets one reply; older messages, and leads where a manager
wrote last, stay as they are. Against the Kommo sandbox over real HTTP, with the real queue.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from agent_platform.agent.models import Agent
from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.kommo.tokens import mark_connection
from agent_platform.crm.models import ConnectionStatus, InboxEvent
from agent_platform.db.session import transaction
from agent_platform.services import Services, open_services
from tests.support.factories import message_form
from tests.support.jobs import run_queued_jobs
from tests.support.kommo_oauth import (
    connect_by_oauth,
    connection_row,
    create_organization,
    oauth_overrides,
    register_integration,
    set_token_expiry,
    switch_faults,
)
from tests.support.servers import serve_app

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers


@pytest.fixture
def oauth_settings(settings: Settings, sandbox: tuple[str, str]) -> Settings:
    register_integration(sandbox[0])
    return settings.model_copy(update=oauth_overrides(sandbox[0]))


@pytest.fixture
async def services(oauth_settings: Settings) -> AsyncIterator[Services]:
    assert oauth_settings.database_url
    async with open_services(oauth_settings, oauth_settings.database_url) as opened:
        yield opened


@pytest.fixture
def platform(oauth_settings: Settings) -> Iterator[str]:
    assert oauth_settings.database_url
    with serve_app(create_app(oauth_settings, oauth_settings.database_url)) as url:
        yield url


@dataclass(frozen=True)
class Account:
    organization_id: uuid.UUID
    api_key: str
    connection_id: uuid.UUID
    webhook_token: str


@pytest.fixture
async def account(services: Services, platform: str) -> Account:
    """An organization whose agent answers a Kommo account connected by OAuth."""
    organization_id, api_key = await create_organization(services)
    connection_id = await connect_by_oauth(services, organization_id)
    async with transaction(services.sessions) as session:
        agent = Agent(
            organization_id=organization_id, name="Agent", instructions="Sell.", model="m"
        )
        session.add(agent)
        await session.flush()
        agent_id = agent.id
    async with httpx.AsyncClient(base_url=platform) as api:
        response = await api.patch(
            connection_path(connection_id),
            json={"agent_id": str(agent_id)},
            headers={"Authorization": f"Bearer {api_key}"},
        )
    assert response.status_code == 200, response.text
    await run_queued_jobs(services)  # the webhook subscription
    row = await connection_row(services, connection_id)
    return Account(organization_id, api_key, connection_id, row.webhook_token)


async def test_reconnecting_answers_the_newest_recent_customer_message_of_each_lead(
    services: Services, platform: str, sandbox: tuple[str, str], account: Account
) -> None:
    lead_a, lead_b, lead_c, lead_d = await create_leads(sandbox, 4)
    # Kommo revokes the grant: the next reply finds out, and the connection needs re-auth.
    switch_faults(sandbox[0], revoke_tokens=True)
    await set_token_expiry(services, account.connection_id, datetime.now(UTC) - timedelta(hours=1))
    await receive(platform, account, "a-1", lead_a)
    await run_queued_jobs(services)
    assert (await connection_row(services, account.connection_id)).status == "needs_reauth"
    await receive(platform, account, "b-1", lead_b)
    await receive(platform, account, "b-2", lead_b, direction="outgoing")  # a manager answered
    await receive(platform, account, "c-1", lead_c)
    await receive(platform, account, "d-1", lead_d)
    await receive(platform, account, "d-2", lead_d)
    await run_queued_jobs(services)
    await received_hours_ago(services, "c-1", hours=2)
    assert await inbox_statuses(services) == {
        "a-1": "failed",
        "b-2": "handled",  # a manager's message is recorded whatever the connection's state
        **dict.fromkeys(["b-1", "c-1", "d-1", "d-2"], "ignored"),
    }

    await connect_by_oauth(services, account.organization_id)
    await run_queued_jobs(services)

    assert await inbox_statuses(services) == {
        "a-1": "handled",  # the message that met the refusal: still waiting, answered
        "b-1": "ignored",  # a manager wrote after it
        "b-2": "handled",
        "c-1": "ignored",  # too old
        "d-1": "ignored",  # one answer for the lead: to its newest message
        "d-2": "handled",
    }
    assert await notes_by_lead(sandbox) == {lead_a: [LLM_REPLY], lead_d: [LLM_REPLY]}

    # Connecting once more finds nothing left to answer.
    await connect_by_oauth(services, account.organization_id)
    await run_queued_jobs(services)
    assert await notes_by_lead(sandbox) == {lead_a: [LLM_REPLY], lead_d: [LLM_REPLY]}


async def test_an_account_disconnected_on_purpose_is_not_answered_for_that_time(
    services: Services, platform: str, sandbox: tuple[str, str], account: Account
) -> None:
    [lead] = await create_leads(sandbox, 1)
    async with httpx.AsyncClient(base_url=platform) as api:
        response = await api.delete(
            connection_path(account.connection_id),
            headers={"Authorization": f"Bearer {account.api_key}"},
        )
    assert response.status_code == 200, response.text
    await receive(platform, account, "x-1", lead)
    await run_queued_jobs(services)

    await connect_by_oauth(services, account.organization_id)
    await run_queued_jobs(services)

    assert await inbox_statuses(services) == {"x-1": "ignored"}
    assert await notes_by_lead(sandbox) == {}


async def test_a_window_of_zero_answers_nothing_after_an_outage(
    oauth_settings: Settings, platform: str, sandbox: tuple[str, str], account: Account
) -> None:
    [lead] = await create_leads(sandbox, 1)
    no_window = oauth_settings.model_copy(update={"kommo_reconnect_reply_window_minutes": 0})
    assert no_window.database_url
    async with open_services(no_window, no_window.database_url) as services:
        await mark_connection(
            services, account.connection_id, ConnectionStatus.NEEDS_REAUTH, "tokens refused"
        )
        await receive(platform, account, "z-1", lead)
        await run_queued_jobs(services)

        await connect_by_oauth(services, account.organization_id)
        await run_queued_jobs(services)

        assert await inbox_statuses(services) == {"z-1": "ignored"}
    assert await notes_by_lead(sandbox) == {}


# --- helpers -------------------------------------------------------------------------------


def connection_path(connection_id: uuid.UUID) -> str:
    return f"/api/v1/integrations/kommo/connections/{connection_id}"


async def create_leads(sandbox: tuple[str, str], count: int) -> list[int]:
    async with httpx.AsyncClient() as kommo:
        response = await kommo.post(
            f"{sandbox[0]}/api/v4/leads",
            json=[{"name": f"Lead {n}"} for n in range(count)],
            headers={"Authorization": f"Bearer {sandbox[1]}"},
        )
    response.raise_for_status()
    return [lead["id"] for lead in response.json()["_embedded"]["leads"]]


async def receive(
    platform: str, account: Account, message_id: str, lead_id: int, direction: str = "incoming"
) -> None:
    """Kommo delivers a `message[add]` webhook to the platform."""
    form = message_form(message_id, f"Message {message_id}", lead_id=lead_id, direction=direction)
    async with httpx.AsyncClient(base_url=platform) as client:
        response = await client.post(f"/webhooks/kommo/{account.webhook_token}", data=form)
    assert response.status_code == 200, response.text


async def received_hours_ago(services: Services, message_id: str, *, hours: int) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(InboxEvent)
            .where(InboxEvent.dedupe_key == f"message:{message_id}")
            .values(received_at=InboxEvent.received_at - timedelta(hours=hours))
        )


async def inbox_statuses(services: Services) -> dict[str, str]:
    async with transaction(services.sessions) as session:
        rows = await session.execute(select(InboxEvent.dedupe_key, InboxEvent.status))
    return {key.removeprefix("message:"): status for key, status in rows}


async def notes_by_lead(sandbox: tuple[str, str]) -> dict[int, list[Any]]:
    async with httpx.AsyncClient() as kommo:
        notes = (await kommo.get(f"{sandbox[0]}/sandbox/notes")).json()["notes"]
    found: dict[int, list[Any]] = {}
    for note in notes:
        found.setdefault(note["entity_id"], []).append(note["params"]["text"])
    return found
