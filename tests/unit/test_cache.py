"""The in-process cache: values expire after their TTL, and it never grows past its size."""

from __future__ import annotations

from agent_platform.kit.cache import LocalCache, process_cache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_value_is_kept_until_its_ttl_ends() -> None:
    clock = Clock()
    cache = LocalCache(clock=clock)
    await cache.set("agent:1", "one", ttl_seconds=600)

    clock.now += 599.9
    assert await cache.get("agent:1") == "one"
    clock.now += 0.1
    assert await cache.get("agent:1") is None


async def test_a_deleted_value_is_a_miss_and_a_new_one_replaces_the_old() -> None:
    cache = LocalCache(clock=Clock())
    await cache.set("agent:1", "one", ttl_seconds=600)
    await cache.set("agent:1", "two", ttl_seconds=600)
    assert await cache.get("agent:1") == "two"

    await cache.delete("agent:1")
    await cache.delete("agent:never-set")

    assert await cache.get("agent:1") is None


async def test_when_full_it_drops_expired_values_first_then_the_oldest() -> None:
    clock = Clock()
    cache = LocalCache(max_entries=2, clock=clock)
    await cache.set("old", "o", ttl_seconds=600)
    await cache.set("short", "s", ttl_seconds=1)
    clock.now += 2

    await cache.set("new", "n", ttl_seconds=600)
    assert (await cache.get("old"), await cache.get("new")) == ("o", "n")

    await cache.set("newest", "n2", ttl_seconds=600)
    assert await cache.get("old") is None
    assert (await cache.get("new"), await cache.get("newest")) == ("n", "n2")


def test_without_redis_the_process_has_one_in_memory_cache() -> None:
    assert isinstance(process_cache(None), LocalCache)
    assert process_cache(None) is process_cache(None)
