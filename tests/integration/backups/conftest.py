"""A test database holding a few rows, and `agent-platform backup …` run in this process."""

from __future__ import annotations

import logging

import pytest
from click.testing import Result
from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.config import Settings
from agent_platform.services import Services
from tests.support.factories import ConnectedAgent, create_connected_agent
from tests.support.processes import settings_env

BACKUP_KEY = "a-backup-passphrase-of-forty-characters!"


@pytest.fixture
async def seeded(services: Services) -> ConnectedAgent:
    """An organization with an agent and a Kommo connection (rows linked by foreign keys)."""
    return await create_connected_agent(
        services, kommo_url="http://kommo.invalid", kommo_token="kommo-token"
    )


def run_backup(
    settings: Settings, *args: str, answer: str | None = None, **env: str | None
) -> Result:
    """`agent-platform backup *args` with the test's settings and `env` on top."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        return CliRunner().invoke(
            app, ["backup", *args], env=settings_env(settings, **env), input=answer
        )
    finally:
        # The command points logging at the runner's captured stderr, closed once it returns.
        root.handlers[:], root.level = handlers, level
