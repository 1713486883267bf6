"""`verify_backup`: a backup is good when it restores, and the restore holds what was dumped.

In order: the file's checksum (a damaged file is reported as such, not as a failed restore),
the key, a restore into a scratch database on the same server, then the row counts per
table, the migration revision and the validity of constraints and indexes. The scratch
database is dropped in every case.
"""

from __future__ import annotations

import time
from pathlib import Path

from agent_platform.ops.backups import database
from agent_platform.ops.backups.model import (
    BackupFailedError,
    BackupManifest,
    ProgressCallback,
    VerificationReport,
)
from agent_platform.ops.backups.restore import encryption_key_for, restore_into
from agent_platform.ops.backups.storage import checksum_problem, load_manifest


def verify_backup(
    database_url: str,
    directory: Path,
    backup_id: str | None = None,
    *,
    encryption_key: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> VerificationReport:
    """Verify `backup_id` (the newest when None) by restoring it next to `database_url`."""
    manifest = load_manifest(directory, backup_id)
    if on_progress:
        on_progress("Checking the checksum", 0.0)
    problem = checksum_problem(directory, manifest)
    if problem:
        return VerificationReport(manifest.id, False, [problem], 0.0, {})
    key = encryption_key_for(manifest, encryption_key)
    started = time.perf_counter()
    problems: list[str] = []
    found: dict[str, int] = {}
    try:
        with database.scratch_database(database_url) as scratch_url:
            restore_into(directory, manifest, scratch_url, key, on_progress=on_progress)
            if on_progress:
                on_progress("Checking the restore", 0.0)
            with database.connect(scratch_url) as scratch:
                found = database.count_rows(scratch)
                problems += _count_problems(manifest, found)
                revision = database.migration_revision(scratch)
                if revision != manifest.revision:
                    problems.append(
                        f"migration revision: {revision} restored, the manifest says "
                        f"{manifest.revision}"
                    )
                problems += database.integrity_problems(scratch)
            if on_progress:
                on_progress("Checking the restore", 1.0)
    except BackupFailedError as exc:
        problems.append(str(exc))
    return VerificationReport(
        backup_id=manifest.id,
        ok=not problems,
        problems=problems,
        restore_seconds=round(time.perf_counter() - started, 3),
        row_counts=found,
    )


def _count_problems(manifest: BackupManifest, found: dict[str, int]) -> list[str]:
    problems = []
    for table in sorted(manifest.row_counts.keys() | found.keys()):
        expected, restored = manifest.row_counts.get(table), found.get(table)
        if expected == restored:
            continue
        if restored is None:
            problems.append(f"table {table} is missing from the restore")
        elif expected is None:
            problems.append(f"table {table} is restored but not in the manifest")
        else:
            problems.append(f"row count of {table}: {expected} in the backup, {restored} restored")
    return problems
