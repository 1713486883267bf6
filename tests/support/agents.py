"""Agents through the REST API in tests: an organization's key, creating and publishing agents,
pointing a Kommo connection at one, and what the contract's error body must look like."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy import select, update

from agent_platform.agent.models import AgentVersion
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.organization.credentials import new_api_key
from agent_platform.organization.models import ApiKey
from agent_platform.services import Services

AGENTS = "/api/v1/agents"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def api_key_of(services: Services, organization_id: uuid.UUID) -> dict[str, str]:
    """Headers with a new API key of the organization."""
    key = new_api_key()
    async with transaction(services.sessions) as session:
        session.add(
            ApiKey(
                organization_id=organization_id,
                name="tests",
                prefix=key.prefix,
                key_hash=key.key_hash,
                scopes=["read", "write"],
            )
        )
    return bearer(key.plaintext)


async def created(
    api: httpx.AsyncClient, headers: dict[str, str], **settings: Any
) -> dict[str, Any]:
    response = await api.post(AGENTS, json={"model": "test/model"} | settings, headers=headers)
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def published(
    api: httpx.AsyncClient, headers: dict[str, str], agent_id: str, version: int
) -> dict[str, Any]:
    response = await api.post(
        f"{AGENTS}/{agent_id}/publish", json={"version": version}, headers=headers
    )
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def patched(
    api: httpx.AsyncClient, headers: dict[str, str], agent_id: str, **changes: Any
) -> dict[str, Any]:
    response = await api.patch(f"{AGENTS}/{agent_id}", json=changes, headers=headers)
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def version_id(services: Services, agent_id: str, number: int) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        found = await session.scalar(
            select(AgentVersion.id).where(
                AgentVersion.agent_id == uuid.UUID(agent_id), AgentVersion.number == number
            )
        )
    assert found is not None
    return found


async def answer_with(services: Services, connection_id: uuid.UUID, agent_id: str) -> None:
    """Let the agent answer the connection's leads, as choosing it in the dashboard will."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(CrmConnection)
            .where(CrmConnection.id == connection_id)
            .values(agent_id=uuid.UUID(agent_id))
        )


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The contract's error body, with this status and code."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id", "timestamp"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body
