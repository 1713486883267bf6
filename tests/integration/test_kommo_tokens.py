"""Access tokens over time, against the Kommo sandbox: refreshed once however many callers
want one, refused tokens taking the connection out of service, and 401 / 403 handling.

"Processes" here are separate Services: each has its own engine (its own PostgreSQL
sessions), HTTP client and Redis client, so only the database lock can keep them from
refreshing the same connection twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import pytest

from agent_platform.config import Settings
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoBlocked
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.kommo.tokens import KommoConnectionInactive, KommoReauthRequired
from agent_platform.crm.sandbox.store import ACCOUNT_ID
from agent_platform.ops.metrics import render_metrics
from agent_platform.services import Services, open_services
from tests.support.factories import create_connected_agent
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


@pytest.fixture
def oauth_settings(settings: Settings, sandbox: tuple[str, str], redis_url: str) -> Settings:
    register_integration(sandbox[0])
    # Processes share Kommo's request budget through Redis, as deployed.
    overrides = oauth_overrides(sandbox[0]) | {"redis_url": redis_url}
    return settings.model_copy(update=overrides)


@pytest.fixture
async def processes(oauth_settings: Settings) -> AsyncIterator[list[Services]]:
    """Three independent sets of services on one database, as three worker processes."""
    assert oauth_settings.database_url
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                open_services(oauth_settings, oauth_settings.database_url)
            )
            for _ in range(3)
        ]


@pytest.fixture
async def connection_id(processes: list[Services]) -> uuid.UUID:
    organization_id, _ = await create_organization(processes[0])
    return await connect_by_oauth(processes[0], organization_id)


async def account_id_seen(kommo: KommoClient) -> int:
    return (await kommo.account.get()).id


async def needing_reauth(services: Services) -> str:
    exposition = (await render_metrics(services)).decode()
    [line] = [
        x for x in exposition.splitlines() if x.startswith("kommo_connections_needing_reauth")
    ]
    return line.split()[-1]


async def test_ten_concurrent_calls_on_an_expired_token_refresh_it_once(
    processes: list[Services], connection_id: uuid.UUID, sandbox: tuple[str, str]
) -> None:
    await set_token_expiry(processes[0], connection_id, datetime.now(UTC) - timedelta(minutes=1))
    before = await connection_row(processes[0], connection_id)
    for services in processes:  # every process ready at once, none late to the race
        await connection_row(services, connection_id)
    # A slow Kommo holds the refresh long enough for every process to find the token expired.
    switch_faults(sandbox[0], delay_seconds=0.3)

    seen = await asyncio.gather(
        *(call_kommo(processes[index % 3], connection_id, account_id_seen) for index in range(10))
    )

    assert seen == [ACCOUNT_ID] * 10
    assert [g["outcome"] for g in grants(sandbox[0], "refresh_token")] == ["issued"]
    after = await connection_row(processes[0], connection_id)
    assert after.refresh_token_encrypted != before.refresh_token_encrypted
    assert after.token_expires_at is not None
    assert after.token_expires_at > datetime.now(UTC) + timedelta(hours=1)
    assert {a["status"] for a in api_arrivals(sandbox[0])} == {200}


async def test_a_token_close_to_expiry_is_refreshed_before_the_call(
    processes: list[Services], connection_id: uuid.UUID, sandbox: tuple[str, str]
) -> None:
    services = processes[0]
    margin = services.settings.kommo_token_refresh_margin_seconds
    await set_token_expiry(
        services, connection_id, datetime.now(UTC) + timedelta(seconds=margin / 2)
    )

    assert await call_kommo(services, connection_id, account_id_seen) == ACCOUNT_ID
    assert await call_kommo(services, connection_id, account_id_seen) == ACCOUNT_ID

    assert len(grants(sandbox[0], "refresh_token")) == 1
    assert {a["status"] for a in api_arrivals(sandbox[0])} == {200}  # no 401 on the way


async def test_a_revoked_refresh_token_takes_the_connection_out_of_service(
    processes: list[Services], connection_id: uuid.UUID, sandbox: tuple[str, str]
) -> None:
    services = processes[0]
    assert await needing_reauth(services) == "0.0"
    switch_faults(sandbox[0], revoke_tokens=True)
    await set_token_expiry(services, connection_id, datetime.now(UTC) - timedelta(minutes=1))

    with pytest.raises(KommoReauthRequired):
        await call_kommo(services, connection_id, account_id_seen)

    row = await connection_row(services, connection_id)
    assert row.status == "needs_reauth"
    assert row.status_reason is not None
    assert "Token has been revoked" in row.status_reason
    assert await needing_reauth(services) == "1.0"
    assert [g["outcome"] for g in grants(sandbox[0], "refresh_token")] == ["Token has been revoked"]
    # Its work stops: later calls fail at once, and Kommo hears nothing more of it.
    seen_by_kommo = (len(api_arrivals(sandbox[0])), len(grants(sandbox[0])))
    for other in processes:
        with pytest.raises(KommoReauthRequired):
            await call_kommo(other, connection_id, account_id_seen)
    assert (len(api_arrivals(sandbox[0])), len(grants(sandbox[0]))) == seen_by_kommo


async def test_a_401_costs_one_refresh_and_one_more_try(
    processes: list[Services], connection_id: uuid.UUID, sandbox: tuple[str, str]
) -> None:
    # Kommo stops taking the access token before the expiry it announced.
    switch_faults(sandbox[0], expire_access_tokens=True)
    earlier = len(api_arrivals(sandbox[0]))  # connecting asked for the account once

    assert await call_kommo(processes[0], connection_id, account_id_seen) == ACCOUNT_ID

    assert [a["status"] for a in api_arrivals(sandbox[0])[earlier:]] == [401, 200]
    assert len(grants(sandbox[0], "refresh_token")) == 1
    assert (await connection_row(processes[0], connection_id)).status == "active"


async def test_a_long_lived_token_refused_needs_reauth_without_a_refresh(
    processes: list[Services], sandbox: tuple[str, str]
) -> None:
    services = processes[0]
    connected = await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token="a-token-this-sandbox-never-issued"
    )

    with pytest.raises(KommoReauthRequired):
        await call_kommo(services, connected.connection_id, account_id_seen)

    row = await connection_row(services, connected.connection_id)
    assert row.status == "needs_reauth"
    assert grants(sandbox[0]) == []
    assert [a["status"] for a in api_arrivals(sandbox[0])] == [401]


async def test_a_403_blocks_the_connection_and_stops_its_calls(
    processes: list[Services], sandbox: tuple[str, str]
) -> None:
    services = processes[0]
    connected = await create_connected_agent(services, kommo_url=sandbox[0], kommo_token=sandbox[1])
    switch_faults(sandbox[0], blocked=True)

    with pytest.raises(KommoBlocked):
        await call_kommo(services, connected.connection_id, account_id_seen)
    with pytest.raises(KommoConnectionInactive):
        await call_kommo(services, connected.connection_id, account_id_seen)

    row = await connection_row(services, connected.connection_id)
    assert row.status == "blocked"
    assert row.status_reason is not None
    assert "403" in row.status_reason
    assert len(api_arrivals(sandbox[0])) == 1
