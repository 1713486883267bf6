"""Fixtures of the CRM tasks and calls tests: the api over HTTP with an organization's API key,
and the Kommo sandbox's own API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agent_platform.services import Services
from tests.support.clients import integrator
from tests.support.factories import ConnectedAgent


@pytest.fixture
async def acme(
    services: Services, connected: ConnectedAgent, api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The api, as the connected organization's integrator (its API key on every request)."""
    async with integrator(services, connected.organization_id, api_url) as client:
        yield client


@pytest.fixture
async def kommo(sandbox: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox's API v4 with the connection's token: what Kommo holds."""
    url, token = sandbox
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client
