"""Health and metrics endpoints of the api process."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from agent_platform.ops.health import (
    Check,
    database_check,
    migrations_check,
    queue_check,
    redis_check,
    run_checks,
)
from agent_platform.ops.metrics import CONTENT_TYPE, render_metrics
from agent_platform.services import Services

router = APIRouter(tags=["operations"])


def api_checks(services: Services) -> dict[str, Check]:
    checks = {
        "database": database_check(services.engine),
        "queue": queue_check(services.engine),
        "migrations": migrations_check(services.engine),
    }
    if services.redis is not None:
        checks["redis"] = redis_check(services.redis)
    return checks


@router.get("/api/health", summary="Deep health check (database, queue, Redis, migrations)")
async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    results = await run_checks(api_checks(services))
    healthy = all(result.ok for result in results)
    body: dict[str, Any] = {
        "status": "ok" if healthy else "failing",
        "checks": {
            r.name: {
                "status": "ok" if r.ok else "failing",
                "latency_ms": r.latency_ms,
                "detail": r.detail,
            }
            for r in results
        },
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/api/health/live", summary="Liveness: the process answers")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    # The same checks as /api/health, so health_check_ok and the endpoint never disagree.
    return Response(
        await render_metrics(services, health_checks=api_checks(services)),
        media_type=CONTENT_TYPE,
    )
