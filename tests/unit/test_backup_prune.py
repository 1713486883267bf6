"""Grandfather-father-son retention on manifests with dates: the newest of each recent day,
ISO week and month is kept, and always the newest backup; prune removes the rest (--dry-run
nothing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent_platform.ops.backups import BackupManifest, list_backups, prune_backups
from agent_platform.ops.backups.prune import backups_to_keep
from agent_platform.ops.backups.storage import manifest_as_json

# A Wednesday.
NOW = datetime(2025, 3, 12, 12, 0, tzinfo=UTC)


def manifest(created_at: datetime) -> BackupManifest:
    return BackupManifest(
        id=f"{created_at:%Y%m%dT%H%M%SZ}-0000",
        created_at=created_at,
        file=f"{created_at:%Y%m%dT%H%M%SZ}-0000.dump",
        size_bytes=1,
        sha256="0" * 64,
        encrypted=False,
        revision="0013",
        server_version="15.19",
        tool_version="15.19",
        row_counts={},
        seconds=0.1,
    )


def at(day: int, hour: int = 2, month: int = 3) -> BackupManifest:
    return manifest(datetime(2025, month, day, hour, 0, tzinfo=UTC))


def kept_ids(manifests: list[BackupManifest], daily: int, weekly: int, monthly: int) -> set[str]:
    return backups_to_keep(
        manifests, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly, now=NOW
    )


def test_the_newest_backup_of_each_recent_day_week_and_month_is_kept() -> None:
    twice_today = [at(12, 1), at(12, 2)]
    this_week = [at(11), at(10)]  # Tuesday, Monday
    last_week = [at(9), at(5), at(3)]  # Sunday, Wednesday, Monday of week 10
    february = [at(28, month=2), at(15, month=2)]
    january = [at(31, month=1)]

    kept = kept_ids([*twice_today, *this_week, *last_week, *february, *january], 3, 2, 3)

    assert kept == {
        at(12, 2).id,  # today (and this week, and this month)
        at(11).id,  # yesterday
        at(10).id,  # the day before
        at(9).id,  # the newest of last week
        at(28, month=2).id,  # February's newest
        at(31, month=1).id,  # January's
    }


def test_the_newest_backup_is_kept_whatever_the_counts() -> None:
    old = [at(1, month=1), at(2, month=1)]

    assert kept_ids(old, 7, 4, 0) == {at(2, month=1).id}
    assert kept_ids(old, 0, 0, 0) == {at(2, month=1).id}
    assert kept_ids([], 7, 4, 6) == set()


def test_a_backup_dated_after_now_is_kept() -> None:
    future = manifest(NOW + timedelta(days=3))

    assert kept_ids([at(12), future], 0, 0, 0) == {future.id}
    assert kept_ids([at(11), at(12), future], 1, 0, 0) == {at(12).id, future.id}


def test_prune_removes_the_files_of_what_it_does_not_keep(tmp_path: Path) -> None:
    for backup in (at(1, month=1), at(11), at(12)):
        (tmp_path / backup.file).write_bytes(b"dump")
        (tmp_path / f"{backup.id}.json").write_text(json.dumps(manifest_as_json(backup)))

    dry = prune_backups(
        tmp_path, keep_daily=2, keep_weekly=0, keep_monthly=0, now=NOW, dry_run=True
    )
    assert (dry.kept, dry.removed) == ([at(12).id, at(11).id], [at(1, month=1).id])
    assert len(list_backups(tmp_path)) == 3

    done = prune_backups(tmp_path, keep_daily=2, keep_weekly=0, keep_monthly=0, now=NOW)
    assert done == dry
    assert [backup.id for backup in list_backups(tmp_path)] == [at(12).id, at(11).id]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [at(11).file, f"{at(11).id}.json", at(12).file, f"{at(12).id}.json"]
    )
