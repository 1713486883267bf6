"""Fixtures of the automation API tests: the api over HTTP as two organizations' integrators
(Acme with a Kommo connection to the sandbox, Beta without one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_platform.db.session import transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.agents import api_key_of
from tests.support.factories import ConnectedAgent


@pytest.fixture
async def acme(
    services: Services, connected: ConnectedAgent, api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    headers = await api_key_of(services, connected.organization_id)
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        yield client


@pytest.fixture
async def beta(services: Services, api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with transaction(services.sessions) as session:
        organization = Organization(name="Beta", slug=f"beta-{uuid.uuid4().hex[:6]}")
        session.add(organization)
    headers = await api_key_of(services, organization.id)
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        yield client
