"""`create_backup`: pg_dump in custom format, with row counts taken in the dump's snapshot.

The counts and the dump see the same data: a REPEATABLE READ transaction exports its
snapshot, counts every table, and stays open while pg_dump runs with `--snapshot`. So verify
can demand that a restore finds exactly the manifest's counts, with no tolerance for rows
written during the backup.
"""

from __future__ import annotations

import hashlib
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import psycopg

from agent_platform.ops.backups import database
from agent_platform.ops.backups.binaries import ClientTool, find_tool, major_of
from agent_platform.ops.backups.client import ClientProcess
from agent_platform.ops.backups.encryption import EncryptingWriter, Sink, check_new_key
from agent_platform.ops.backups.model import BackupFailedError, BackupManifest, ProgressCallback
from agent_platform.ops.backups.storage import (
    PARTIAL_SUFFIX,
    new_backup_id,
    prepare_directory,
    write_manifest,
)

_PIPE_CHUNK = 1024 * 1024


def create_backup(
    database_url: str,
    directory: Path,
    *,
    encryption_key: str | None = None,
    on_progress: ProgressCallback | None = None,
) -> BackupManifest:
    """Dump the database into `directory` (encrypted when a key is given) with its manifest."""
    if encryption_key is not None:
        check_new_key(encryption_key)
    prepare_directory(directory)
    started = time.perf_counter()
    created_at = datetime.now(UTC)
    backup_id = new_backup_id(created_at)
    file_name = f"{backup_id}.dump" + (".enc" if encryption_key else "")
    with database.connect(database_url) as connection:
        version = database.server_version(connection)
        tool = find_tool("pg_dump", major_of(version))
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        exported = connection.execute("SELECT pg_export_snapshot()").fetchone()
        assert exported is not None
        revision = database.migration_revision(connection)
        counts = database.count_rows(connection, on_progress)
        size, sha256 = _dump(
            tool,
            database_url,
            snapshot=str(exported[0]),
            target=directory / file_name,
            encryption_key=encryption_key,
            tables=len(counts),
            on_progress=on_progress,
        )
        connection.rollback()
    manifest = BackupManifest(
        id=backup_id,
        created_at=created_at,
        file=file_name,
        size_bytes=size,
        sha256=sha256,
        encrypted=encryption_key is not None,
        revision=revision,
        server_version=version,
        tool_version=tool.version,
        row_counts=counts,
        seconds=round(time.perf_counter() - started, 3),
        database=database.database_name(database_url),
    )
    write_manifest(directory, manifest)
    return manifest


class _HashingFile:
    """The file being written, hashed and measured on the way (the manifest's sha256 is of the
    file as stored, so it checks the ciphertext of an encrypted backup)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes, /) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self._stream.write(data)


def _dump(
    tool: ClientTool,
    database_url: str,
    *,
    snapshot: str,
    target: Path,
    encryption_key: str | None,
    tables: int,
    on_progress: ProgressCallback | None,
) -> tuple[int, str]:
    """pg_dump's output into `target` (by way of a partial file): its size and sha256."""
    dsn, env = database.client_arguments(database_url)
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    dump = ClientProcess(
        tool,
        ["--format=custom", f"--snapshot={snapshot}", f"--dbname={dsn}"],
        env=env,
        table_marker="dumping contents of table",
        feeds_stdin=False,
    )
    try:
        with open(partial, "wb", opener=_private) as stream:
            stored = _HashingFile(stream)
            sink: Sink = EncryptingWriter(stored, encryption_key) if encryption_key else stored
            while chunk := dump.stdout.read(_PIPE_CHUNK):
                sink.write(chunk)
                if on_progress:
                    on_progress("Dumping", min(dump.tables_done / max(tables, 1), 1.0))
            if isinstance(sink, EncryptingWriter):
                sink.close()
        dump.finish()
        os.replace(partial, target)
    except BaseException as exc:
        dump.kill()
        partial.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise BackupFailedError(f"cannot write {target}: {exc}") from None
        raise
    if on_progress:
        on_progress("Dumping", 1.0)
    return stored.size, stored.digest.hexdigest()


def _private(path: str, flags: int) -> int:
    """Backups hold every secret the database holds: readable by their owner only."""
    return os.open(path, flags, 0o600)
