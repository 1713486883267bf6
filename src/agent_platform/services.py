"""The long-lived resources a process opens once (engine, HTTP client, queue) and closes on exit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import procrastinate
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agent_platform.config import Settings
from agent_platform.db.session import create_engine, create_session_factory
from agent_platform.kit.crypto import SecretBox
from agent_platform.kit.rate_limit import FixedWindowCounter, RateLimiter, create_rate_limiter
from agent_platform.llm.gateway import LlmGateway, create_llm_gateway
from agent_platform.queue.app import create_queue_app

# Kommo's second, and a little for clocks that tick in milliseconds (kit.rate_limit counts a
# request until a period after its answer, so network delays need no margin here).
KOMMO_RATE_WINDOW_SECONDS = 1.05


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    queue: procrastinate.App
    http: httpx.AsyncClient
    secrets: SecretBox
    redis: Redis | None
    # None without an LLM API key: agents then answer from the knowledge base or hand over.
    llm: LlmGateway | None
    # Shared by every process through Redis when REDIS_URL is set (kit.rate_limit).
    kommo_rate_limiter: RateLimiter
    # Sign-in attempts per address, where no Redis shares them (organization.login).
    login_attempts: FixedWindowCounter


@asynccontextmanager
async def open_services(settings: Settings, database_url: str) -> AsyncIterator[Services]:
    engine = create_engine(database_url)
    queue = create_queue_app(database_url, settings)
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    redis = Redis.from_url(settings.redis_url, socket_timeout=2) if settings.redis_url else None
    sessions = create_session_factory(engine)
    llm = create_llm_gateway(settings, sessions)
    try:
        async with queue.open_async():
            yield Services(
                settings=settings,
                engine=engine,
                sessions=sessions,
                queue=queue,
                http=http,
                secrets=secret_box(settings),
                redis=redis,
                llm=llm,
                kommo_rate_limiter=create_rate_limiter(
                    redis, settings.kommo_requests_per_second, KOMMO_RATE_WINDOW_SECONDS
                ),
                login_attempts=FixedWindowCounter(),
            )
    finally:
        await http.aclose()
        if llm is not None:
            await llm.close()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def secret_box(settings: Settings) -> SecretBox:
    assert settings.encryption_key is not None, "ensure_secrets() provides it"
    previous = settings.encryption_key_previous
    return SecretBox(
        settings.encryption_key.get_secret_value(),
        previous.get_secret_value() if previous else None,
    )
