"""Knowledge-base rows for tests: an organization with an agent and an API key, documents."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from agent_platform.agent.models import Agent
from agent_platform.db.session import transaction
from agent_platform.knowledge import service
from agent_platform.knowledge.models import DocumentKind
from agent_platform.knowledge.repository import DocumentRecord
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.agents import api_key_of


@dataclass(frozen=True)
class Tenant:
    organization_id: uuid.UUID
    agent_id: uuid.UUID
    other_agent_id: uuid.UUID
    headers: dict[str, str]  # with an API key of the organization


async def create_tenant(services: Services, name: str = "Acme") -> Tenant:
    async with transaction(services.sessions) as session:
        organization = Organization(name=name, slug=f"{name.lower()}-{secrets.token_hex(3)}")
        session.add(organization)
        await session.flush()
        agents = [
            Agent(organization_id=organization.id, name=f"{name} {role}", model="test/model")
            for role in ("sales", "support")
        ]
        session.add_all(agents)
    headers = await api_key_of(services, organization.id)
    return Tenant(organization.id, agents[0].id, agents[1].id, headers)


async def add_text(
    services: Services,
    organization_id: uuid.UUID,
    text: str,
    *,
    title: str = "Notes",
    agent_id: uuid.UUID | None = None,
) -> DocumentRecord:
    document = service.NewDocument(title, DocumentKind.MARKDOWN, text, agent_id)
    return await service.add_text_document(services, organization_id, document)
