"""Deep health checks: each check reports its status and latency; any failure makes it 503."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_platform.db.migrate import current_revision, head_revision

CHECK_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    latency_ms: float
    detail: str | None = None


Check = Callable[[], Awaitable[str | None]]


async def run_check(name: str, check: Check) -> CheckResult:
    """Run one check with a time limit; its return value is an optional detail."""
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(), timeout=CHECK_TIMEOUT_SECONDS)
        ok = True
    except TimeoutError:
        ok, detail = False, f"no answer within {CHECK_TIMEOUT_SECONDS:g}s"
    except Exception as exc:
        ok, detail = False, _describe(exc)
    return CheckResult(name, ok, round((time.perf_counter() - started) * 1000, 2), detail)


def _describe(exc: Exception) -> str:
    # The first line only: driver errors carry multi-line context that is noise here.
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first_line}"[:300]


def database_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return None

    return check


def queue_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        async with engine.connect() as connection:
            workers = await connection.scalar(
                text(
                    "SELECT count(*) FROM procrastinate_workers "
                    "WHERE last_heartbeat > now() - interval '1 minute'"
                )
            )
        return f"{workers} worker(s) alive"

    return check


def migrations_check(engine: AsyncEngine) -> Check:
    async def check() -> str | None:
        current, head = await current_revision(engine), head_revision()
        if current != head:
            raise RuntimeError(f"database at {current}, code expects {head}")
        return current

    return check


async def run_checks(checks: dict[str, Check]) -> list[CheckResult]:
    return list(await asyncio.gather(*(run_check(name, c) for name, c in checks.items())))


def redis_check(redis: Redis) -> Check:
    async def check() -> str | None:
        await redis.ping()
        return None

    return check
