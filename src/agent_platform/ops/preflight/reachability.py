"""What a deployment talks to: the database and its migrations, Redis, the LLM, its instances.

Each check has a short time limit (ops.health's): a preflight says "unreachable" in seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
from redis.asyncio import Redis

from agent_platform.config import Settings
from agent_platform.ops.health import (
    CHECK_TIMEOUT_SECONDS,
    CheckResult,
    database_check,
    migrations_check,
    redis_check,
    run_check,
)
from agent_platform.ops.preflight.outcome import (
    CheckOutcome,
    failed,
    passed,
    skipped,
    warning,
)
from agent_platform.ops.queue_monitor import command_engine


def _outcome(result: CheckResult, passed_detail: str = "") -> CheckOutcome:
    if result.ok:
        return passed(result.name, result.detail or passed_detail)
    return failed(result.name, result.detail or "failed")


async def database_checks(settings: Settings) -> list[CheckOutcome]:
    """The database answers, and its schema is at the code's latest migration."""
    if not settings.database_url:
        reason = "DATABASE_URL not set (development: `agent-platform db current` checks it)"
        return [skipped("database", reason), skipped("migrations", reason)]
    engine = command_engine(settings.database_url)
    try:
        reached = await run_check("database", database_check(engine))
        if not reached.ok:
            return [_outcome(reached), skipped("migrations", "database unreachable")]
        at_head = await run_check("migrations", migrations_check(engine))
        migrations = _outcome(at_head)
        if not at_head.ok:
            migrations = failed("migrations", f"{at_head.detail}: run `agent-platform db upgrade`")
        return [_outcome(reached, "reachable"), migrations]
    finally:
        await engine.dispose()


async def redis_outcome(settings: Settings) -> CheckOutcome:
    if not settings.redis_url:
        return skipped("redis", "REDIS_URL not set")
    redis = Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        return _outcome(await run_check("redis", redis_check(redis)), "reachable")
    finally:
        await redis.aclose()


async def llm_outcome(settings: Settings, http: httpx.AsyncClient) -> CheckOutcome:
    """A warning only: without its LLM the platform still answers from knowledge bases."""
    name = "llm endpoint"
    url = f"{settings.llm_base_url.rstrip('/')}/models"
    key = settings.openrouter_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    try:
        response = await http.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return warning(name, f"GET {url}: {type(exc).__name__}: {exc}".strip(": "))
    if response.is_success:
        return passed(name, f"GET {url}: {response.status_code}")
    return warning(name, f"GET {url}: HTTP {response.status_code}")


async def instance_outcome(base_url: str, http: httpx.AsyncClient) -> CheckOutcome:
    """A running api instance's deep health: 200 and status ok, else which checks fail."""
    url = f"{base_url.rstrip('/')}/api/health"
    name = f"health {base_url}"
    try:
        response = await http.get(url)
    except httpx.HTTPError as exc:
        return failed(name, f"GET {url}: {type(exc).__name__}: {exc}".strip(": "))
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return failed(name, f"HTTP {response.status_code}, not a health report")
    if response.status_code == 200 and body.get("status") == "ok":
        return passed(name, "HTTP 200, status ok")
    checks = body.get("checks")
    failing = (
        [n for n, c in checks.items() if isinstance(c, dict) and c.get("status") != "ok"]
        if isinstance(checks, dict)
        else []
    )
    listed = f"; failing: {', '.join(failing)}" if failing else ""
    return failed(name, f"HTTP {response.status_code}, status {body.get('status')!r}{listed}")


async def reachability_checks(settings: Settings, urls: Sequence[str]) -> list[CheckOutcome]:
    timeout = httpx.Timeout(CHECK_TIMEOUT_SECONDS * 2, connect=CHECK_TIMEOUT_SECONDS)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as http:
        database, others = await asyncio.gather(
            database_checks(settings),
            asyncio.gather(
                redis_outcome(settings),
                llm_outcome(settings, http),
                *(instance_outcome(url, http) for url in urls),
            ),
        )
    return [*database, *others]
