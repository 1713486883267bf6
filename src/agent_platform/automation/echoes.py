"""Our own CRM changes, waiting for Kommo's webhook about them (loop protection).

Before an action changes a lead in Kommo (a stage, a tag, a field, the responsible user), it
records what the webhook about that change will show; when the webhook's event matches, the
event inherits the action's origin, so a trigger never fires on the echo of its own action
and chains stay counted. Kommo may never send the webhook (not subscribed): expectations
expire and the clock deletes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.events import EventType, Origin
from agent_platform.automation.models import ExpectedEcho

DEFAULT_ECHO_TTL = timedelta(minutes=10)


async def expect_echo(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    connection_id: uuid.UUID,
    lead_id: int,
    event_type: EventType,
    match: dict[str, Any],
    origin: Origin,
    ttl: timedelta = DEFAULT_ECHO_TTL,
) -> None:
    session.add(
        ExpectedEcho(
            organization_id=organization_id,
            connection_id=connection_id,
            lead_id=lead_id,
            event_type=event_type.value,
            match=match,
            origin=origin.to_json(),
            expires_at=datetime.now(UTC) + ttl,
        )
    )
    await session.flush()


async def consume_echo(
    session: AsyncSession,
    *,
    connection_id: uuid.UUID,
    lead_id: int,
    event_type: EventType,
    data: Mapping[str, Any],
) -> Origin | None:
    """The origin of the oldest unexpired expectation the event's data matches (deleting it);
    None when the event is not an echo of ours."""
    expected = await session.scalars(
        select(ExpectedEcho)
        .where(
            ExpectedEcho.connection_id == connection_id,
            ExpectedEcho.lead_id == lead_id,
            ExpectedEcho.event_type == event_type.value,
            ExpectedEcho.expires_at > datetime.now(UTC),
        )
        .order_by(ExpectedEcho.created_at)
        .with_for_update(skip_locked=True)
    )
    for echo in expected:
        if all(_same(data.get(key), value) for key, value in echo.match.items()):
            await session.delete(echo)
            await session.flush()
            return Origin.from_json(echo.origin)
    return None


async def delete_expired_echoes(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(delete(ExpectedEcho).where(ExpectedEcho.expires_at <= now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _same(seen: Any, expected: Any) -> bool:
    """Kommo's webhooks carry every value as a string: 142 and "142" are the same stage."""
    if seen == expected:
        return True
    return seen is not None and expected is not None and str(seen) == str(expected)
