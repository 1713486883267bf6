"""`agent-platform dr drill`: a real backup restored into a scratch database, RTO and RPO
measured against the targets; no earlier backup means the RPO is not met."""

from __future__ import annotations

import json
import logging

from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.config import Settings
from tests.integration.backups.conftest import run_backup
from tests.support.factories import ConnectedAgent
from tests.support.processes import settings_env


def drill(settings: Settings, *args: str) -> tuple[int, str]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        done = CliRunner().invoke(app, ["dr", "drill", *args], env=settings_env(settings))
    finally:
        # As in run_backup: the command points logging at the runner's closed stderr.
        root.handlers[:], root.level = handlers, level
    return done.exit_code, done.stdout


def test_a_drill_after_a_recent_backup_verifies_and_meets_both_targets(
    settings: Settings, seeded: ConnectedAgent
) -> None:
    assert run_backup(settings, "create", "--json").exit_code == 0

    code, output = drill(settings, "--json")

    assert code == 0, output
    report = json.loads(output)
    assert report["verified"] is True
    assert report["passed"] is True
    assert 0 < report["rto_seconds"] <= report["rto_target_seconds"] == 60 * 60
    assert 0 <= report["rpo_seconds"] <= report["rpo_target_seconds"] == 24 * 3600
    assert report["problems"] == []


def test_without_an_earlier_backup_or_with_a_tight_rto_the_drill_fails(
    settings: Settings, seeded: ConnectedAgent
) -> None:
    code, output = drill(settings, "--json")
    report = json.loads(output)
    assert code == 1
    assert report["verified"] is True
    assert report["rpo_seconds"] is None
    assert report["rpo_met"] is False

    code, output = drill(settings, "--rto-target", "0.000001")
    assert code == 1
    assert "RTO" in output
    assert "✗" in output
