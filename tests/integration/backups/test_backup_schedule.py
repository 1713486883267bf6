"""The worker's scheduled backup: a due slot defers exactly one `backup_database` job (also
after a missed slot, and not beside one still waiting), and the job writes a backup."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from agent_platform.ops.backups import list_backups
from agent_platform.ops.backups.schedule import BACKUP_JOB, defer_due_backup
from agent_platform.services import Services, open_services
from tests.conftest import make_settings
from tests.support.factories import create_connected_agent
from tests.support.jobs import run_queued_jobs

# 03:00 UTC every day.
SCHEDULE = "0 3 * * *"
SLOT = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)


@pytest.fixture
async def scheduled(clean_database: str, tmp_path: Path) -> AsyncIterator[Services]:
    settings = make_settings(
        clean_database, tmp_path / "data", "http://127.0.0.1:9", backup_schedule=SCHEDULE
    )
    async with open_services(settings, clean_database) as services:
        yield services


async def backup_jobs(services: Services) -> list[tuple[str, str]]:
    async with services.engine.connect() as connection:
        found = await connection.execute(
            text(
                "SELECT args->>'slot', status FROM procrastinate_jobs "
                "WHERE task_name = :task ORDER BY id"
            ),
            {"task": BACKUP_JOB},
        )
        return [(slot, status) for slot, status in found]


async def test_a_due_slot_defers_one_backup_and_the_job_writes_it(scheduled: Services) -> None:
    await create_connected_agent(scheduled, kommo_url="http://kommo.invalid", kommo_token="t")

    assert await defer_due_backup(scheduled, SLOT + timedelta(seconds=30)) is not None
    assert await defer_due_backup(scheduled, SLOT + timedelta(minutes=1)) is None
    assert await backup_jobs(scheduled) == [(SLOT.isoformat(), "todo")]

    await run_queued_jobs(scheduled)

    backups = list_backups(scheduled.settings.backup_directory)
    assert len(backups) == 1
    assert backups[0].row_counts["organizations"] == 1
    assert await backup_jobs(scheduled) == [(SLOT.isoformat(), "succeeded")]
    assert await defer_due_backup(scheduled, SLOT + timedelta(minutes=2)) is None


async def test_a_missed_slot_is_taken_once_and_never_beside_a_waiting_one(
    scheduled: Services,
) -> None:
    # The worker was down at 03:00 and is back at 09:00.
    next_slot = SLOT + timedelta(days=1)
    back_at = next_slot + timedelta(hours=6)

    assert await defer_due_backup(scheduled, back_at) is not None
    assert await defer_due_backup(scheduled, back_at + timedelta(minutes=1)) is None
    # The next day's slot while that job still waits: the queueing lock holds it back.
    assert await defer_due_backup(scheduled, next_slot + timedelta(days=1, minutes=1)) is None
    assert await backup_jobs(scheduled) == [(next_slot.isoformat(), "todo")]
