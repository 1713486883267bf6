"""The Kommo connection's jobs, and how they are deferred."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.kommo import webhook_subscription
from agent_platform.crm.models import CrmConnection
from agent_platform.queue.registry import defer_in_transaction, platform_job
from agent_platform.services import Services


@platform_job("subscribe_kommo_webhook")
async def subscribe_kommo_webhook(
    services: Services, *, connection_id: str, destination: str
) -> None:
    await webhook_subscription.subscribe(services, uuid.UUID(connection_id), destination)


async def defer_webhook_subscription(
    session: AsyncSession, services: Services, connection: CrmConnection, *, public_base_url: str
) -> None:
    """Subscribe the connection's webhook once `session`'s transaction, which keeps the
    connection, commits. `public_base_url`: where Kommo reaches this platform."""
    await defer_in_transaction(
        session,
        services.queue,
        subscribe_kommo_webhook,
        services.settings.job_queue_name,
        connection_id=str(connection.id),
        destination=webhook_subscription.webhook_destination(
            public_base_url, connection.webhook_token
        ),
    )
