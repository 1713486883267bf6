"""Preflight's judgement of configuration and of a source tree, on settings and temp files."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.config import Settings
from agent_platform.ops.preflight.configuration import Role, configuration_checks
from agent_platform.ops.preflight.outcome import CheckStatus
from agent_platform.ops.preflight.source_tree import (
    CRITICAL_FILES,
    critical_files_outcome,
    healthcheck_outcome,
    secrets_outcome,
)


def _production(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "production",
        "database_url": "postgresql://platform@db:5432/platform",
        "encryption_key": SecretStr(secrets.token_urlsafe(40)),
        "secret_key": SecretStr(secrets.token_urlsafe(40)),
        "public_base_url": "https://agents.example.com",
        "openrouter_api_key": SecretStr("key"),
    }
    return Settings(_env_file=None, **(values | overrides))


def _statuses(settings: Settings, role: Role = Role.ALL) -> dict[str, CheckStatus]:
    return {check.name: check.status for check in configuration_checks(settings, role)}


def _failures(settings: Settings) -> dict[str, str]:
    return {
        check.name: check.detail
        for check in configuration_checks(settings, Role.ALL)
        if check.status is CheckStatus.FAILED
    }


def test_a_sound_production_configuration_has_no_failure() -> None:
    assert _failures(_production()) == {}


@pytest.mark.parametrize(
    ("overrides", "name", "reason"),
    [
        ({"database_url": None}, "DATABASE_URL", "embedded PostgreSQL is for development only"),
        ({"encryption_key": SecretStr("change-me")}, "ENCRYPTION_KEY", "known default"),
        ({"encryption_key": SecretStr("short")}, "ENCRYPTION_KEY", "shorter than 32"),
        ({"secret_key": None}, "SECRET_KEY", "not set"),
        ({"secret_key": SecretStr("ab" * 20)}, "SECRET_KEY", "repeats a few characters"),
        ({"public_base_url": "http://agents.example.com"}, "PUBLIC_BASE_URL", "https"),
        ({"public_base_url": "https://localhost"}, "PUBLIC_BASE_URL", "Kommo cannot reach"),
        ({"kommo_client_id": "id"}, "Kommo OAuth (KOMMO_CLIENT_*)", "KOMMO_CLIENT_SECRET"),
    ],
)
def test_production_refuses(overrides: dict[str, Any], name: str, reason: str) -> None:
    assert reason in _failures(_production(**overrides))[name]


def test_one_key_for_both_secrets_is_refused() -> None:
    key = SecretStr(secrets.token_urlsafe(40))
    failures = _failures(_production(encryption_key=key, secret_key=key))
    assert "equals ENCRYPTION_KEY" in failures["SECRET_KEY"]


def test_development_only_warns_where_production_fails() -> None:
    statuses = _statuses(
        _production(environment="development", database_url=None, encryption_key=None)
    )
    assert statuses["DATABASE_URL"] is CheckStatus.PASSED
    assert statuses["ENCRYPTION_KEY"] is CheckStatus.WARNING


def test_missing_llm_key_and_redis_are_warnings_in_production() -> None:
    statuses = _statuses(_production(openrouter_api_key=None))
    assert statuses["LLM (OPENROUTER_API_KEY, LLM_BASE_URL)"] is CheckStatus.WARNING
    assert statuses["REDIS_URL"] is CheckStatus.WARNING
    self_hosted = _statuses(_production(openrouter_api_key=None, llm_base_url="http://ollama/v1"))
    assert self_hosted["LLM (OPENROUTER_API_KEY, LLM_BASE_URL)"] is CheckStatus.PASSED


def test_each_role_gets_its_own_checks() -> None:
    settings = _production(worker_health_port=70000)
    assert "CORS_ALLOWED_ORIGINS" not in _statuses(settings, Role.WORKER)
    assert _statuses(settings, Role.WORKER)["WORKER_HEALTH_PORT"] is CheckStatus.FAILED
    assert "WORKER_HEALTH_PORT" not in _statuses(settings, Role.API)
    assert "CORS_ALLOWED_ORIGINS" in _statuses(settings, Role.API)


def _tree(root: Path, dockerfile: str) -> Path:
    for name in CRITICAL_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    (root / "deploy" / "Dockerfile").write_text(dockerfile)
    return root


@pytest.mark.parametrize(
    ("dockerfile", "status", "says"),
    [
        (
            "FROM python:3.12 AS build\nRUN make\nFROM python:3.12-slim\n"
            "# HEALTHCHECK in a comment does not count\n"
            "HEALTHCHECK --interval=15s \\\n    CMD python -c 'print(1)'\nCMD [\"api\"]\n",
            CheckStatus.PASSED,
            "deploy/Dockerfile",
        ),
        (
            "FROM python:3.12 AS build\nHEALTHCHECK CMD true\nFROM python:3.12-slim\nCMD x\n",
            CheckStatus.FAILED,
            "final stage has no HEALTHCHECK",
        ),
        ("FROM python:3.12-slim\nHEALTHCHECK NONE\n", CheckStatus.FAILED, "NONE disables"),
    ],
)
def test_the_final_image_stage_needs_a_healthcheck(
    tmp_path: Path, dockerfile: str, status: CheckStatus, says: str
) -> None:
    found = healthcheck_outcome(_tree(tmp_path, dockerfile))
    assert found.status is status
    assert says in found.detail


def test_missing_critical_files_are_named(tmp_path: Path) -> None:
    root = _tree(tmp_path, "FROM x\n")
    (root / "uv.lock").unlink()
    (root / "deploy" / "Dockerfile").unlink()
    found = critical_files_outcome(root)
    assert found.status is CheckStatus.FAILED
    assert found.detail == "missing: uv.lock, deploy/Dockerfile"
    assert healthcheck_outcome(root).detail == "deploy/Dockerfile not found"


def test_a_secret_in_the_tree_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "settings.env").write_text("APP_NAME=agents\n")
    assert secrets_outcome(tmp_path).status is CheckStatus.PASSED
    # Built here, so that this file holds no key for the repository's own scan to find.
    (tmp_path / "settings.env").write_text("OPENROUTER_API_KEY=" + "sk-or-v1-" + "9f3a" * 16)
    found = secrets_outcome(tmp_path)
    assert found.status is CheckStatus.FAILED
    assert found.detail.startswith("1 finding(s): settings.env:1 ")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--url", "agents.example.com"], "is not an http(s) URL"),
        (["--role", "scheduler"], "'scheduler' is not one of"),
        (["--env", "prod"], "'prod' is not one of"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], says: str) -> None:
    result = CliRunner().invoke(app, ["preflight", *args])
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
