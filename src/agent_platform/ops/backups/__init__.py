"""Database backups: create (pg_dump, optionally encrypted), list, verify by restoring into a
scratch database, restore, prune by grandfather-father-son retention. docs/backups.md."""

from agent_platform.ops.backups.create import create_backup
from agent_platform.ops.backups.model import (
    BackupError,
    BackupFailedError,
    BackupManifest,
    DatabaseUnreachableError,
    ProgressCallback,
    PruneResult,
    VerificationReport,
)
from agent_platform.ops.backups.prune import prune_backups
from agent_platform.ops.backups.restore import restore_backup
from agent_platform.ops.backups.storage import list_backups, load_manifest, manifest_as_json
from agent_platform.ops.backups.verify import verify_backup

__all__ = [
    "BackupError",
    "BackupFailedError",
    "BackupManifest",
    "DatabaseUnreachableError",
    "ProgressCallback",
    "PruneResult",
    "VerificationReport",
    "create_backup",
    "list_backups",
    "load_manifest",
    "manifest_as_json",
    "prune_backups",
    "restore_backup",
    "verify_backup",
]
