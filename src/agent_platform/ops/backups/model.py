"""What a backup is, what a verification found, and the errors the commands turn into exit codes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

# (what is being done, how much of it is done: 0..1). Each phase runs from 0 to 1 on its own.
ProgressCallback = Callable[[str, float], None]


class BackupError(Exception):
    """Something the user can put right (unknown id, no backups, a missing or wrong key, a
    target that is not empty). The message is one line."""


class BackupFailedError(BackupError):
    """The work itself failed (pg_dump or pg_restore said no, a file could not be written)."""


class DatabaseUnreachableError(BackupError):
    """The database server could not be reached."""


@dataclass(frozen=True)
class BackupManifest:
    """Stored as `<id>.json` beside the dump it describes."""

    id: str
    created_at: datetime
    file: str
    size_bytes: int
    sha256: str
    encrypted: bool
    revision: str | None
    server_version: str
    tool_version: str
    # Every table of the public schema (alembic_version and the queue's tables included), counted
    # in the very snapshot pg_dump dumped: a restore must find exactly these.
    row_counts: dict[str, int]
    seconds: float
    database: str = ""


@dataclass(frozen=True)
class VerificationReport:
    backup_id: str
    ok: bool
    problems: list[str]
    restore_seconds: float
    row_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PruneResult:
    kept: list[str]
    removed: list[str]
