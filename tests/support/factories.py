"""Rows the tests need: an organization with an active agent connected to a Kommo sandbox."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import update

from agent_platform.agent.models import Agent
from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import read_webhook
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services


@dataclass(frozen=True)
class ConnectedAgent:
    organization_id: uuid.UUID
    agent_id: uuid.UUID
    connection_id: uuid.UUID
    webhook_token: str


async def create_connected_agent(
    services: Services, *, kommo_url: str, kommo_token: str, name: str = "Acme"
) -> ConnectedAgent:
    async with transaction(services.sessions) as session:
        organization = Organization(name=name, slug=f"{name.lower()}-{secrets.token_hex(3)}")
        session.add(organization)
        await session.flush()
        agent = Agent(
            organization_id=organization.id,
            name=f"{name} agent",
            instructions="Sell politely.",
            model="test/model",
        )
        session.add(agent)
        await session.flush()
        connection = CrmConnection(
            organization_id=organization.id,
            subdomain="sandbox",
            base_url=kommo_url,
            access_token_encrypted=services.secrets.encrypt(kommo_token),
            webhook_token=secrets.token_urlsafe(16),
            agent_id=agent.id,
        )
        session.add(connection)
        await session.flush()
        return ConnectedAgent(organization.id, agent.id, connection.id, connection.webhook_token)


def message_form(
    message_id: str, text: str, *, lead_id: int, direction: str = "incoming"
) -> dict[str, str]:
    """A Kommo `message[add]` webhook body, as Kommo form-encodes it."""
    return {
        "message[add][0][id]": message_id,
        "message[add][0][chat_id]": "chat-1",
        "message[add][0][talk_id]": "11",
        "message[add][0][contact_id]": "1001",
        "message[add][0][text]": text,
        "message[add][0][element_type]": "2",
        "message[add][0][element_id]": str(lead_id),
        "message[add][0][type]": direction,
        "message[add][0][author][id]": CUSTOMER_CHAT_ID,
        "message[add][0][author][name]": "Ann",
        "account[id]": "30000001",
        "account[subdomain]": "sandbox",
    }


async def receive_webhook(
    services: Services, connected: ConnectedAgent, form: dict[str, str]
) -> None:
    """Kommo's webhook `form` accepted as the endpoint accepts it (one transaction)."""
    async with transaction(services.sessions) as session:
        await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connected.webhook_token,
            webhook=read_webhook(form.items()),
        )


# The customer's id in the Chats API, as `message_form` names the author.
CUSTOMER_CHAT_ID = "0d5c2b9a-aaaa-4bbb-8ccc-ddddeeeeffff"


async def use_reply_channel(
    services: Services, connection_id: uuid.UUID, channel: str, **settings: str
) -> None:
    """Switch a connection's reply channel; `settings` are its chats_* columns (plain text;
    `chats_secret` is stored encrypted as chats_secret_encrypted)."""
    values: dict[str, str] = {"reply_channel": channel}
    for name, value in settings.items():
        if name == "chats_secret":
            values["chats_secret_encrypted"] = services.secrets.encrypt(value)
        else:
            values[name] = value
    async with transaction(services.sessions) as session:
        await session.execute(
            update(CrmConnection).where(CrmConnection.id == connection_id).values(**values)
        )
