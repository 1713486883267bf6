"""HTTP clients the integration tests act through: the api as an organization's integrator,
and the Kommo sandbox sending its webhooks to the api, as Kommo does once subscribed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx

from agent_platform.services import Services
from tests.support.agents import api_key_of


@asynccontextmanager
async def integrator(
    services: Services, organization_id: uuid.UUID, api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The api with the organization's API key on every request."""
    headers = await api_key_of(services, organization_id)
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        yield client


@asynccontextmanager
async def sandbox_sending_webhooks(
    sandbox: tuple[str, str], destination: str, settings: Sequence[str]
) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox (its API v4 with the account's token), subscribed to send the webhooks
    named by `settings` ("add_message", "status_lead", …) to `destination`."""
    url, token = sandbox
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as kommo:
        subscribed = await kommo.post(
            "/api/v4/webhooks", json={"destination": destination, "settings": list(settings)}
        )
        assert subscribed.status_code == 200, subscribed.text
        yield kommo
