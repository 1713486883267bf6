"""`agent-platform preflight` run as an operator runs it before a production deployment."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from tests.support.processes import platform_env, run_cli
from tests.support.servers import serve_app

DOCKERFILE = "FROM python:3.12-slim\nHEALTHCHECK CMD python -c 'print(1)'\nCMD [\"api\"]\n"


def _health_app(status_code: int, body: Mapping[str, object]) -> FastAPI:
    app = FastAPI()

    @app.get("/api/health")
    async def health() -> JSONResponse:
        return JSONResponse(dict(body), status_code=status_code)

    return app


@pytest.fixture
def healthy_url() -> Iterator[str]:
    with serve_app(_health_app(200, {"status": "ok", "checks": {}})) as url:
        yield url


@pytest.fixture
def unhealthy_url() -> Iterator[str]:
    body = {"status": "failing", "checks": {"database": {"status": "failing"}}}
    with serve_app(_health_app(503, body)) as url:
        yield url


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A checkout with what deploying needs and no secrets (and no .venv: no code checks)."""
    root = tmp_path / "checkout"
    (root / "deploy").mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock", "deploy/docker-compose.yml"):
        (root / name).write_text("# placeholder\n")
    (root / "deploy" / "Dockerfile").write_text(DOCKERFILE)
    return root


def _production_env(tmp_path: Path, **variables: str | None) -> dict[str, str]:
    values: dict[str, str | None] = {
        "DATA_DIR": str(tmp_path / "data"),
        "ENCRYPTION_KEY": secrets.token_urlsafe(40),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "PUBLIC_BASE_URL": "https://agents.example.com",
        "COLUMNS": "200",
    }
    return platform_env(**(values | variables))


def test_a_ready_deployment_passes_with_warnings(
    database_url: str, fake_llm_url: str, healthy_url: str, source: Path, tmp_path: Path
) -> None:
    env = _production_env(
        tmp_path,
        DATABASE_URL=database_url,
        OPENROUTER_API_KEY="test-key",
        LLM_BASE_URL=f"{fake_llm_url}/v1",
    )
    result = run_cli(
        ["preflight", "--env", "production", "--url", healthy_url, "--source", str(source),
         "--skip-code-checks", "--json"],
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert (report["passed"], report["environment"], report["role"]) == (True, "production", "all")
    statuses = {check["name"]: check["status"] for check in report["checks"]}
    assert all(set(check) == {"name", "status", "detail"} for check in report["checks"])
    for name in (
        "ENCRYPTION_KEY",
        "SECRET_KEY",
        "database",
        "migrations",
        "llm endpoint",
        f"health {healthy_url}",
        "critical files",
        "Dockerfile HEALTHCHECK",
        "no secrets in the tree",
    ):
        assert statuses[name] == "passed", name
    # No Redis and no Sentry in production: worth a warning, not a refusal.
    assert statuses["REDIS_URL"] == statuses["SENTRY_DSN"] == "warning"
    assert statuses["lint (ruff)"] == statuses["types (mypy)"] == "skipped"


def test_what_would_break_production_is_named_and_fails(
    unhealthy_url: str, source: Path, tmp_path: Path
) -> None:
    env = _production_env(
        tmp_path,
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere",
        ENCRYPTION_KEY="change-me",
        SECRET_KEY=None,
    )
    result = run_cli(
        ["preflight", "--env", "production", "--url", unhealthy_url, "--source", str(source),
         "--skip-code-checks"],
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    failed = {
        line.split("│")[2].strip(): line.split("│")[3].strip()
        for line in result.stdout.splitlines()
        if line.startswith("│ ✗")
    }
    assert failed == {
        "ENCRYPTION_KEY": "ENCRYPTION_KEY is a known default value; generate a new one",
        "SECRET_KEY": "SECRET_KEY is not set",
        "database": failed["database"],
        f"health {unhealthy_url}": "HTTP 503, status 'failing'; failing: database",
    }
    assert "Connection refused" in failed["database"]
    assert "Preflight failed: 4 check(s) failed" in result.stdout
    assert "Traceback" not in result.stderr
