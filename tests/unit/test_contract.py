"""Every setting is documented where the contract says: .env.example and docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_platform.config import Settings

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_NAMES = {
    "DATABASE_URL",
    "REDIS_URL",
    "ENCRYPTION_KEY",
    "SECRET_KEY",
    "OPENROUTER_API_KEY",
    "LLM_BASE_URL",
    "LLM_DEFAULT_MODEL",
    "JOB_QUEUE_NAME",
    "JOB_CONCURRENCY",
    "SENTRY_DSN",
    "KOMMO_CLIENT_ID",
    "KOMMO_CLIENT_SECRET",
    "KOMMO_REDIRECT_URI",
    "PUBLIC_BASE_URL",
    "ENVIRONMENT",
    "DATA_DIR",
    "LOG_LEVEL",
    "LOG_FORMAT",
}
SETTING_NAMES = {name.upper() for name in Settings.model_fields}


def test_settings_read_every_name_of_the_contract() -> None:
    assert CONTRACT_NAMES <= SETTING_NAMES


@pytest.mark.parametrize("document", [".env.example", "docs/configuration.md"])
def test_every_setting_is_documented(document: str) -> None:
    text = (ROOT / document).read_text()
    undocumented = {name for name in SETTING_NAMES if name not in text}
    assert not undocumented, f"{document} does not mention {sorted(undocumented)}"
