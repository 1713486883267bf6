"""Redis, when configured, is part of /api/health: reachable is ok, unreachable is 503."""

from __future__ import annotations

import httpx

from agent_platform.app import create_app
from agent_platform.config import Settings
from tests.conftest import free_port
from tests.support.servers import serve_app


def health_of(settings: Settings) -> httpx.Response:
    assert settings.database_url
    with serve_app(create_app(settings, settings.database_url)) as url:
        return httpx.get(f"{url}/api/health", timeout=10)


def test_reachable_redis_is_reported_ok(settings: Settings, redis_url: str) -> None:
    response = health_of(settings.model_copy(update={"redis_url": redis_url}))
    assert response.status_code == 200
    assert response.json()["checks"]["redis"]["status"] == "ok"


def test_unreachable_redis_makes_health_503(settings: Settings, redis_url: str) -> None:
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    response = health_of(settings.model_copy(update={"redis_url": unreachable}))
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"]["status"] == "failing"
    assert body["checks"]["database"]["status"] == "ok"


def test_without_redis_url_there_is_no_redis_check(settings: Settings) -> None:
    response = health_of(settings)
    assert response.status_code == 200
    assert "redis" not in response.json()["checks"]
