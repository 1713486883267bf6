"""Connecting to the Kommo sandbox by OAuth in tests, and reading what the sandbox recorded."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import SecretStr
from sqlalchemy import func, select, update

from agent_platform.crm.kommo import connections
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.organization.credentials import new_api_key
from agent_platform.organization.models import ApiKey, Organization
from agent_platform.services import Services

CLIENT_ID = "platform-test-integration"
CLIENT_SECRET = "integration-secret-for-tests-only-0123456789"
# Where Kommo sends the admin's browser back to; tests make that hop themselves.
REDIRECT_URI = "https://platform.example/api/v1/integrations/kommo/oauth/callback"
CALLBACK_PATH = "/api/v1/integrations/kommo/oauth/callback"


def oauth_overrides(sandbox_url: str) -> dict[str, Any]:
    """Settings naming our integration and trusting the sandbox as a Kommo domain."""
    return {
        "kommo_client_id": CLIENT_ID,
        "kommo_client_secret": SecretStr(CLIENT_SECRET),
        "kommo_redirect_uri": REDIRECT_URI,
        "kommo_oauth_url": f"{sandbox_url}/oauth",
        "kommo_sandbox_url": sandbox_url,
    }


def register_integration(sandbox_url: str, *, access_token_ttl_seconds: float = 86400) -> None:
    """Tell the sandbox about our integration, as a developer does in Kommo's settings."""
    httpx.put(
        f"{sandbox_url}/sandbox/oauth/integration",
        json={
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "redirect_uri": REDIRECT_URI,
            "access_token_ttl_seconds": access_token_ttl_seconds,
        },
    ).raise_for_status()


async def create_organization(services: Services, name: str = "Acme") -> tuple[uuid.UUID, str]:
    """An organization and a plaintext API key of it."""
    key = new_api_key()
    async with transaction(services.sessions) as session:
        organization = Organization(name=name, slug=f"{name.lower()}-{secrets.token_hex(3)}")
        session.add(organization)
        await session.flush()
        session.add(
            ApiKey(
                organization_id=organization.id,
                name="tests",
                prefix=key.prefix,
                key_hash=key.key_hash,
                scopes=["*"],
            )
        )
        return organization.id, key.plaintext


def consent(authorize_url: str) -> dict[str, str]:
    """What the admin's browser does at Kommo: open the consent page and come back with the
    redirect's query (code, state, referer)."""
    response = httpx.get(authorize_url, follow_redirects=False)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI), location
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def connect_by_oauth(services: Services, organization_id: uuid.UUID) -> uuid.UUID:
    """The whole OAuth flow through the service functions; the new connection's id."""
    start = connections.start_authorization(services, organization_id, "post_message")
    query = consent(start.authorize_url)
    connection = await connections.connect_with_code(
        services, code=query["code"], state=query["state"], referer=query["referer"]
    )
    return connection.id


def grants(sandbox_url: str, grant_type: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = httpx.get(f"{sandbox_url}/sandbox/oauth/grants").json()["grants"]
    return [grant for grant in found if grant_type is None or grant["grant_type"] == grant_type]


def api_arrivals(sandbox_url: str) -> list[dict[str, Any]]:
    """Every /api/v4 request the sandbox received, in arrival order, with its status."""
    arrivals: list[dict[str, Any]] = httpx.get(f"{sandbox_url}/sandbox/faults/requests").json()[
        "requests"
    ]
    return arrivals


def switch_faults(sandbox_url: str, **faults: Any) -> None:
    httpx.post(f"{sandbox_url}/sandbox/faults", json=faults).raise_for_status()


def most_in_any_window(times: list[float], window: float = 1.0) -> int:
    """The largest number of `times` inside any half-open window [t, t + window)."""
    ordered = sorted(times)
    most = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        most = max(most, end - start + 1)
    return most


async def connection_row(services: Services, connection_id: uuid.UUID) -> CrmConnection:
    async with transaction(services.sessions) as session:
        connection = await session.get(CrmConnection, connection_id)
    assert connection is not None
    return connection


async def connection_count(services: Services) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(CrmConnection)) or 0)


async def set_token_expiry(
    services: Services, connection_id: uuid.UUID, expires_at: datetime
) -> None:
    """Make the platform believe the access token expires then (Kommo's copy is untouched)."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(CrmConnection)
            .where(CrmConnection.id == connection_id)
            .values(token_expires_at=expires_at)
        )
