"""Redis memory at scrape time, from INFO memory: what the RedisMemoryHigh alert compares."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric
from redis.asyncio import Redis


async def redis_memory_families(redis: Redis) -> list[Metric]:
    info = await redis.info("memory")
    used = GaugeMetricFamily("redis_memory_used_bytes", "Memory Redis uses (INFO used_memory).")
    used.add_metric([], int(info["used_memory"]))
    maximum = GaugeMetricFamily(
        "redis_memory_max_bytes",
        "Redis's memory limit (INFO maxmemory); 0 means no limit is set.",
    )
    maximum.add_metric([], int(info["maxmemory"]))
    return [used, maximum]
