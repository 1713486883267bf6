"""The backup directory: `<id>.dump` (or `.dump.enc`) and its manifest `<id>.json`.

A backup exists once its manifest does: the dump is written under a temporary name and
renamed, then the manifest is written (also by rename), so an interrupted backup is never
listed. Removing goes the other way round, manifest first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from agent_platform.ops.backups.model import BackupError, BackupManifest

MANIFEST_SUFFIX = ".json"
PARTIAL_SUFFIX = ".partial"
# "20261203T101500Z-3f2a": the time sorts, the suffix keeps two backups of one second apart.
_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
_READ_CHUNK = 1024 * 1024

log = structlog.get_logger("backups")


def new_backup_id(now: datetime) -> str:
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def prepare_directory(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise BackupError(f"cannot create the backup directory {directory}: {exc}") from None


def manifest_as_json(manifest: BackupManifest) -> dict[str, Any]:
    """The manifest as stored, and as `backup list --json` prints it."""
    return asdict(manifest) | {"created_at": manifest.created_at.isoformat()}


def write_manifest(directory: Path, manifest: BackupManifest) -> None:
    final = directory / f"{manifest.id}{MANIFEST_SUFFIX}"
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    partial.write_text(json.dumps(manifest_as_json(manifest), indent=2) + "\n", encoding="utf-8")
    os.replace(partial, final)


def list_backups(directory: Path) -> list[BackupManifest]:
    """Every backup in `directory`, newest first (none when the directory does not exist).

    An unreadable manifest is logged and left out: one damaged file must not hide the rest.
    """
    if not directory.is_dir():
        return []
    manifests = []
    for path in directory.glob(f"*{MANIFEST_SUFFIX}"):
        try:
            manifests.append(_read_manifest(path))
        except BackupError as exc:
            log.warning("backup_manifest_unreadable", path=str(path), error=str(exc))
    return sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)


def load_manifest(directory: Path, backup_id: str | None) -> BackupManifest:
    """The backup `backup_id`, or the newest one when it is None."""
    if backup_id is None:
        newest = list_backups(directory)
        if not newest:
            raise BackupError(f"no backups in {directory}")
        return newest[0]
    if not _ID_PATTERN.match(backup_id):
        raise BackupError(f"{backup_id!r} is not a backup id (like 20261203T101500Z-3f2a)")
    path = directory / f"{backup_id}{MANIFEST_SUFFIX}"
    if not path.exists():
        raise BackupError(f"no backup {backup_id} in {directory}")
    return _read_manifest(path)


def remove_backup(directory: Path, manifest: BackupManifest) -> None:
    (directory / f"{manifest.id}{MANIFEST_SUFFIX}").unlink(missing_ok=True)
    (directory / manifest.file).unlink(missing_ok=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_problem(directory: Path, manifest: BackupManifest) -> str | None:
    """Why the stored file is not the one the manifest describes, or None when it is."""
    path = directory / manifest.file
    if not path.exists():
        return f"checksum mismatch: {manifest.file} is missing"
    size = path.stat().st_size
    if size != manifest.size_bytes:
        return (
            f"checksum mismatch: {manifest.file} has {size} bytes, the manifest says "
            f"{manifest.size_bytes} (truncated or replaced)"
        )
    if file_sha256(path) != manifest.sha256:
        return f"checksum mismatch: the sha256 of {manifest.file} differs from the manifest's"
    return None


def _read_manifest(path: Path) -> BackupManifest:
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        data["created_at"] = datetime.fromisoformat(data["created_at"])
        return BackupManifest(**data)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise BackupError(f"the manifest {path.name} is unreadable ({exc})") from None
