"""BACKUP_SCHEDULE: the newest slot is due within the catch-up window only, and a worker will
not start on an expression that is not cron."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.ops.backups.schedule import CATCH_UP, due_slot
from tests.support.processes import platform_env

DAILY_AT_3 = "0 3 * * *"
SLOT = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)


def test_the_newest_slot_is_due_until_the_catch_up_window_closes() -> None:
    assert due_slot(DAILY_AT_3, SLOT) == SLOT
    assert due_slot(DAILY_AT_3, SLOT + timedelta(hours=7, seconds=30)) == SLOT
    assert due_slot(DAILY_AT_3, SLOT - timedelta(minutes=1)) == SLOT - timedelta(days=1)
    mondays_at_3 = "0 3 * * 1"  # SLOT is a Monday
    assert due_slot(mondays_at_3, SLOT + CATCH_UP) == SLOT
    assert due_slot(mondays_at_3, SLOT + CATCH_UP + timedelta(minutes=1)) is None


def test_a_worker_refuses_a_schedule_that_is_not_cron() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    env = platform_env(
        ENCRYPTION_KEY="k" * 40,
        SECRET_KEY="s" * 40,
        DATABASE_URL="postgresql://postgres@127.0.0.1:1/never-reached",
        BACKUP_SCHEDULE="every day at 3",
    )
    try:
        done = CliRunner().invoke(app, ["worker"], env=env)
    finally:
        root.handlers[:], root.level = handlers, level

    assert done.exit_code == 2
    assert done.stderr.splitlines() == [
        "Cannot start: BACKUP_SCHEDULE 'every day at 3' is not a cron expression "
        "(five fields, UTC, e.g. '30 2 * * *' for 02:30 every day)"
    ]
