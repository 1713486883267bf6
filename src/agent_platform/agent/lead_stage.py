"""The lead's pipeline stage, for an agent that works only in some stages (the reply gate's
first check).

Kommo's message webhook does not say where the lead stands, so the stage is read from Kommo:
before the deciding transaction (no outside call inside a write transaction), and only when
the agent limits its stages — other agents pay no Kommo request for it.
"""

from __future__ import annotations

import uuid

from agent_platform.agent.published import published_agent
from agent_platform.agent.runtime.stages import LeadStage
from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.models import ConnectionStatus, InboxStatus
from agent_platform.db.session import transaction
from agent_platform.services import Services


async def lead_stage_for(services: Services, inbox_event_id: uuid.UUID) -> LeadStage | None:
    """Where the event's lead stands, when its agent needs to know; None otherwise (the gate
    then does not check stages)."""
    async with transaction(services.sessions) as session:
        event = await crm.get_inbox_event(session, inbox_event_id)
        if event is None or event.status != InboxStatus.PENDING.value:
            return None
        connection = await crm.get_connection(session, event.connection_id)
        if (
            connection is None
            or connection.agent_id is None
            or connection.status != ConnectionStatus.ACTIVE.value
        ):
            return None
        agent = await published_agent(services, session, connection.agent_id)
    message = event.payload["message"]
    if agent is None or not agent.active_stages or message["entity_type"] != "leads":
        return None
    lead = await call_kommo(
        services, connection.id, lambda kommo: kommo.leads.get(int(message["entity_id"]))
    )
    return LeadStage(pipeline_id=lead.pipeline_id, status_id=lead.status_id)
