"""How a connection answers its customers: the reply channel, the Chats channel's settings and
the agent that answers the account.

A change names only what it changes: a setting it leaves out is kept, one it gives as None is
cleared. The settings that result must be able to deliver a reply, or nothing is changed:
the Chats channel signs with its secret, addresses its scope and sends as its bot, so
choosing `chats` needs all three (a note needs nothing; a Salesbot names itself in each
request). The channel secret is stored encrypted and never shown again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.models import AgentStatus
from agent_platform.agent.repository import get_agent
from agent_platform.crm.kommo.connections import require_connection
from agent_platform.crm.models import CrmConnection, ReplyChannel
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.crypto import SecretBox
from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.services import Services


class ReplyChannelIncompleteError(AppError):
    code = "reply_channel_incomplete"


@dataclass(frozen=True)
class ReplySettingsChange:
    """The settings a request gives (`given` names them); the others are kept."""

    given: frozenset[str]
    reply_channel: ReplyChannel | None = None  # never cleared: a connection always has one
    agent_id: uuid.UUID | None = None
    chats_scope_id: str | None = None
    chats_secret: str | None = field(default=None, repr=False)
    chats_bot_id: str | None = None
    chats_api_url: str | None = None


# What the Chats channel cannot reply without: the change's name for it, and its column.
_CHATS_REQUIREMENTS = (
    ("chats_scope_id", "chats_scope_id"),
    ("chats_secret", "chats_secret_encrypted"),
    ("chats_bot_id", "chats_bot_id"),
)


async def change_reply_settings(
    services: Services,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    change: ReplySettingsChange,
) -> CrmConnection:
    async with tenant_transaction(services.sessions, organization_id) as session:
        connection = await require_connection(session, organization_id, connection_id)
        if "agent_id" in change.given and change.agent_id is not None:
            await _require_agent(session, organization_id, change.agent_id)
        values = _column_values(change, services.secrets)
        _require_deliverable(connection, values)
        for name, value in values.items():
            setattr(connection, name, value)
        await session.flush()
        await session.refresh(connection)
        return connection


async def _require_agent(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> None:
    agent = await get_agent(session, agent_id)
    # An archived agent was deleted through the API: as unknown as one never made.
    if (
        agent is None
        or agent.organization_id != organization_id
        or agent.status == AgentStatus.ARCHIVED.value
    ):
        raise NotFoundError("This organization has no agent with this id.")


def _column_values(change: ReplySettingsChange, secrets: SecretBox) -> dict[str, Any]:
    values: dict[str, Any] = {
        name: getattr(change, name) for name in change.given - {"reply_channel", "chats_secret"}
    }
    if change.reply_channel is not None:
        values["reply_channel"] = change.reply_channel.value
    if "chats_secret" in change.given:
        secret = change.chats_secret
        values["chats_secret_encrypted"] = secrets.encrypt(secret) if secret else None
    return values


def _require_deliverable(connection: CrmConnection, values: dict[str, Any]) -> None:
    def after_change(column: str) -> Any:
        return values[column] if column in values else getattr(connection, column)

    if after_change("reply_channel") != ReplyChannel.CHATS.value:
        return
    missing = [name for name, column in _CHATS_REQUIREMENTS if not after_change(column)]
    if missing:
        raise ReplyChannelIncompleteError(
            "Replies through the Chats API need the channel's scope id, secret and bot id.",
            details=[
                {"path": name, "message": "Required for the chats reply channel"}
                for name in missing
            ],
        )
