"""Restoring a backup: the stored file (decrypted on the way) streamed into pg_restore."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from agent_platform.ops.backups import database
from agent_platform.ops.backups.binaries import find_tool, major_of
from agent_platform.ops.backups.client import ClientProcess
from agent_platform.ops.backups.encryption import decrypted_chunks
from agent_platform.ops.backups.model import (
    BackupError,
    BackupFailedError,
    BackupManifest,
    ProgressCallback,
)
from agent_platform.ops.backups.storage import checksum_problem, load_manifest

_READ_CHUNK = 1024 * 1024


def restore_backup(
    directory: Path,
    backup_id: str,
    target_url: str,
    *,
    encryption_key: str | None = None,
    clean: bool = False,
    on_progress: ProgressCallback | None = None,
) -> float:
    """Restore into `target_url`; the seconds it took.

    The target must be empty, unless `clean`: then every object the backup holds is dropped
    and created again (objects it does not hold stay). One transaction: a restore that fails
    leaves the target as it was.
    """
    manifest = load_manifest(directory, backup_id)
    problem = checksum_problem(directory, manifest)
    if problem:
        raise BackupFailedError(problem)
    key = encryption_key_for(manifest, encryption_key)
    started = time.perf_counter()
    with database.connect(target_url, autocommit=True) as target:
        relations = database.user_relations(target)
        if relations and not clean:
            raise BackupError(
                f"the database {database.database_name(target_url)} is not empty "
                f"({relations} tables, views or sequences): restore into an empty database "
                "or replace what the backup holds with --clean"
            )
        database.ensure_tenant_role(target)
    restore_into(directory, manifest, target_url, key, clean=clean, on_progress=on_progress)
    return time.perf_counter() - started


def encryption_key_for(manifest: BackupManifest, encryption_key: str | None) -> str | None:
    """The key to read the backup with: None for a plain one; refused when one is missing."""
    if not manifest.encrypted:
        return None
    if not encryption_key:
        raise BackupError(f"backup {manifest.id} is encrypted: set BACKUP_ENCRYPTION_KEY")
    return encryption_key


def restore_into(
    directory: Path,
    manifest: BackupManifest,
    target_url: str,
    encryption_key: str | None,
    *,
    clean: bool = False,
    on_progress: ProgressCallback | None = None,
) -> None:
    """pg_restore the backup into `target_url` in one transaction, stopping at the first error.

    pg_restore must be at least as new as the pg_dump that wrote the archive, and is best of
    the target server's own major version.
    """
    with database.connect(target_url) as target:
        server_major = major_of(database.server_version(target))
    tool = find_tool("pg_restore", max(server_major, major_of(manifest.tool_version)))
    dsn, env = database.client_arguments(target_url)
    arguments = ["--no-owner", "--single-transaction", "--exit-on-error", f"--dbname={dsn}"]
    if clean:
        arguments += ["--clean", "--if-exists"]
    with open(directory / manifest.file, "rb") as stored:
        # The key is checked here, before pg_restore starts.
        chunks = _plaintext(stored, encryption_key)
        restore = ClientProcess(
            tool,
            arguments,
            env=env,
            table_marker="processing data for table",
            feeds_stdin=True,
        )
        try:
            for chunk in chunks:
                restore.stdin.write(chunk)
                if on_progress:
                    done = restore.tables_done / max(len(manifest.row_counts), 1)
                    on_progress("Restoring", min(done, 1.0))
        except BrokenPipeError:
            pass  # pg_restore stopped reading: finish() reports why
        except BaseException:
            restore.kill()  # the transaction is rolled back
            raise
        restore.finish()
    if on_progress:
        on_progress("Restoring", 1.0)


def _plaintext(stored: BinaryIO, encryption_key: str | None) -> Iterator[bytes]:
    if encryption_key is not None:
        return decrypted_chunks(stored, encryption_key)
    return iter(lambda: stored.read(_READ_CHUNK), b"")
