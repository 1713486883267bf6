"""Secrets: refused when weak outside development, generated once and kept in development."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from agent_platform.config import Environment, Settings, WeakSecretError, ensure_secrets

STRONG = "k" * 20 + "Z9-strong-enough-for-tests"


def make(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("encryption_key", "message"),
    [
        (None, "ENCRYPTION_KEY is not set"),
        ("short", "ENCRYPTION_KEY is shorter than 32 characters"),
        ("change-me", "ENCRYPTION_KEY is a known default value"),
    ],
)
def test_production_refuses_a_missing_short_or_default_key(
    tmp_path: Path, encryption_key: str | None, message: str
) -> None:
    settings = make(
        tmp_path,
        environment=Environment.PRODUCTION,
        encryption_key=SecretStr(encryption_key) if encryption_key else None,
        secret_key=SecretStr(STRONG),
    )
    with pytest.raises(WeakSecretError, match=message):
        ensure_secrets(settings)
    assert not (tmp_path / "secrets").exists()


def test_production_accepts_strong_keys(tmp_path: Path) -> None:
    settings = make(
        tmp_path,
        environment=Environment.PRODUCTION,
        encryption_key=SecretStr(STRONG),
        secret_key=SecretStr(STRONG + "x"),
    )
    assert ensure_secrets(settings) == settings


def test_development_generates_missing_keys_once_and_reuses_them(tmp_path: Path) -> None:
    first = ensure_secrets(make(tmp_path))
    second = ensure_secrets(make(tmp_path))
    assert first.encryption_key is not None
    assert second.encryption_key is not None
    assert len(first.encryption_key.get_secret_value()) >= 32
    assert first.encryption_key == second.encryption_key
    assert first.secret_key == second.secret_key
    assert first.encryption_key != first.secret_key
    assert (tmp_path / "secrets" / "encryption_key").stat().st_mode & 0o777 == 0o600


def test_environment_names_of_the_contract_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOB_QUEUE_NAME", "other-jobs")
    monkeypatch.setenv("JOB_CONCURRENCY", "9")
    monkeypatch.setenv("LLM_DEFAULT_MODEL", "vendor/model")
    settings = make(tmp_path)
    assert (settings.job_queue_name, settings.job_concurrency) == ("other-jobs", 9)
    assert settings.llm_default_model == "vendor/model"
    assert Settings(_env_file=None).job_queue_name == "other-jobs"  # type: ignore[call-arg]
