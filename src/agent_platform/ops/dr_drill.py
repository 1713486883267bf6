"""The disaster-recovery drill: back up, restore into a scratch database, verify, and measure
recovery time (RTO) and recovery point (RPO) against the targets. docs/disaster-recovery.md."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent_platform.ops.backups import ProgressCallback, create_backup, list_backups, verify_backup


@dataclass(frozen=True)
class DrillReport:
    backup_id: str
    verified: bool
    problems: list[str]
    # Time from the start of the restore to a verified database: what recovery would take.
    rto_seconds: float
    rto_target_seconds: float
    # Age of the newest backup before the drill (None: there was none): the data a loss of
    # the database at that moment would have cost. The drill's own backup does not count.
    rpo_seconds: float | None
    rpo_target_seconds: float
    backup_seconds: float

    @property
    def rto_met(self) -> bool:
        return self.verified and self.rto_seconds <= self.rto_target_seconds

    @property
    def rpo_met(self) -> bool:
        return self.rpo_seconds is not None and self.rpo_seconds <= self.rpo_target_seconds

    @property
    def passed(self) -> bool:
        return self.verified and self.rto_met and self.rpo_met


def run_drill(
    database_url: str,
    directory: Path,
    *,
    rto_target_seconds: float,
    rpo_target_seconds: float,
    encryption_key: str | None = None,
    on_progress: ProgressCallback | None = None,
    now: datetime | None = None,
) -> DrillReport:
    earlier = list_backups(directory)
    started = now or datetime.now(UTC)
    rpo = (started - earlier[0].created_at).total_seconds() if earlier else None
    manifest = create_backup(
        database_url, directory, encryption_key=encryption_key, on_progress=on_progress
    )
    report = verify_backup(
        database_url,
        directory,
        manifest.id,
        encryption_key=encryption_key,
        on_progress=on_progress,
    )
    return DrillReport(
        backup_id=manifest.id,
        verified=report.ok,
        problems=report.problems,
        rto_seconds=report.restore_seconds,
        rto_target_seconds=rto_target_seconds,
        rpo_seconds=rpo,
        rpo_target_seconds=rpo_target_seconds,
        backup_seconds=manifest.seconds,
    )
