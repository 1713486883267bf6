"""What the agent pages read, through the agents, automation and Kommo services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from agent_platform.agent import management
from agent_platform.agent.models import AgentVersion
from agent_platform.agent.repository import AgentRecord
from agent_platform.agent.schemas import AgentSettings
from agent_platform.agent.versions import settings_of
from agent_platform.automation.models import Sequence, Trigger
from agent_platform.automation.sequences import service as sequences
from agent_platform.automation.triggers import service as triggers
from agent_platform.automation.triggers.repository import TriggerQuery
from agent_platform.crm.kommo.connections import list_connections
from agent_platform.crm.models import CrmConnection
from agent_platform.kit.pagination import MAX_LIMIT, PageRequest
from agent_platform.services import Services
from agent_platform.web.auth import SignedInUser

# A tab lists at most this many rows, newest first (the automation pages list them all).
SHOWN_ROWS = MAX_LIMIT


@dataclass(frozen=True)
class EditedAgent:
    """An agent as its edit page shows it: the newest saved settings (what the next version
    builds on and what the playground tries) and its versions, newest first."""

    record: AgentRecord
    settings: AgentSettings
    versions: list[AgentVersion]

    @property
    def has_more_versions(self) -> bool:
        return len(self.versions) >= SHOWN_ROWS


async def edited_agent(services: Services, user: SignedInUser, agent_id: uuid.UUID) -> EditedAgent:
    record, found = await management.list_versions(
        services, user.as_principal(), agent_id, PageRequest.parse(SHOWN_ROWS, None)
    )
    versions = found.items
    # An agent written by other means than the API may have no version: its row is all.
    settings = (
        AgentSettings.model_validate(versions[0].settings)
        if versions
        else settings_of(record.agent)
    )
    return EditedAgent(record, settings, versions)


async def agent_triggers(
    services: Services, user: SignedInUser, agent_id: uuid.UUID
) -> list[Trigger]:
    found = await triggers.list_triggers(
        services,
        user.organization_id,
        TriggerQuery(agent_id=agent_id),
        PageRequest.parse(SHOWN_ROWS, None),
    )
    return found.items


async def agent_sequences(
    services: Services, user: SignedInUser, agent_id: uuid.UUID
) -> list[Sequence]:
    found = await sequences.list_sequences(
        services, user.organization_id, agent_id, None, PageRequest.parse(SHOWN_ROWS, None)
    )
    return found.items


async def answering_connections(
    services: Services, user: SignedInUser, agent_id: uuid.UUID
) -> list[CrmConnection]:
    """The organization's Kommo connections whose messages this agent answers."""
    connections = await list_connections(services, user.organization_id)
    return [connection for connection in connections if connection.agent_id == agent_id]
