"""The agent that answers customers, by id, through the cache (10 minutes; kit.cache).

Every change to an agent forgets its entry once committed, in every process when Redis is
shared. A reader that loaded the row just before a change and stores it just after the
forget keeps the old settings until the TTL ends: rare, and bounded.
"""

from __future__ import annotations

import uuid

from pydantic import ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent import repository
from agent_platform.agent.schemas import AgentSettings
from agent_platform.kit.cache import process_cache
from agent_platform.services import Services

AGENT_CACHE_TTL_SECONDS = 600.0


class PublishedAgent(AgentSettings):
    """An agent's published settings (see models.Agent), with what the reply flow checks."""

    # Entries written by an older release may carry fields this one dropped.
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    organization_id: uuid.UUID
    status: str
    published_version_id: uuid.UUID | None


def _key(agent_id: uuid.UUID) -> str:
    # The schema's generation in the key: a release that changes PublishedAgent incompatibly
    # bumps it instead of reading entries it cannot parse.
    return f"agent:v1:{agent_id}"


async def published_agent(
    services: Services, session: AsyncSession, agent_id: uuid.UUID
) -> PublishedAgent | None:
    cache = process_cache(services.redis)
    cached = await cache.get(_key(agent_id))
    if cached is not None:
        return PublishedAgent.model_validate_json(cached)
    agent = await repository.get_agent(session, agent_id)
    if agent is None:
        return None
    published = PublishedAgent.model_validate(agent, from_attributes=True)
    await cache.set(_key(agent_id), published.model_dump_json(), AGENT_CACHE_TTL_SECONDS)
    return published


async def forget_agent(services: Services, agent_id: uuid.UUID) -> None:
    """Call after the change is committed, or a reader could cache the old row again."""
    await process_cache(services.redis).delete(_key(agent_id))
