"""The Redis cache against a real Redis, and against none listening: a miss, never an error."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from structlog.testing import capture_logs

from agent_platform.kit.cache import RedisCache, process_cache
from tests.conftest import free_port


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=2)
    yield client
    await client.aclose()


def key() -> str:
    # Other test runs may share the Redis: keys of their own.
    return f"test:{secrets.token_hex(8)}"


def errors_counted(operation: str) -> float:
    return REGISTRY.get_sample_value("cache_errors_total", {"operation": operation}) or 0.0


async def test_values_are_shared_through_redis_with_their_ttl(redis: Redis, redis_url: str) -> None:
    name = key()
    writer = RedisCache(redis)
    other_client = Redis.from_url(redis_url)
    try:
        reader = RedisCache(other_client)
        await writer.set(name, "снимок", ttl_seconds=600)

        assert await reader.get(name) == "снимок"
        assert 0 < await redis.pttl(f"cache:{name}") <= 600_000
        await reader.delete(name)
        assert await writer.get(name) is None
    finally:
        await other_client.aclose()


async def test_an_unreachable_redis_is_a_miss_logged_once_and_counted(
    unreachable_redis: Redis,
) -> None:
    cache = RedisCache(unreachable_redis)
    before = {operation: errors_counted(operation) for operation in ("get", "set", "delete")}

    with capture_logs() as logs:
        await cache.set("agent:1", "one", ttl_seconds=600)
        assert await cache.get("agent:1") is None
        assert await cache.get("agent:1") is None
        await cache.delete("agent:1")

    assert [entry["event"] for entry in logs] == ["cache_redis_unavailable"]
    assert errors_counted("get") == before["get"] + 2
    assert errors_counted("set") == before["set"] + 1
    assert errors_counted("delete") == before["delete"] + 1


def test_each_redis_client_has_one_cache_for_the_process(
    redis: Redis, unreachable_redis: Redis
) -> None:
    assert process_cache(redis) is process_cache(redis)
    assert process_cache(redis) is not process_cache(unreachable_redis)
