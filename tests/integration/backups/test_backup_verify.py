"""`backup create|list|verify`: a backup verifies by restoring with the counts it was taken
with, encrypted or not; damage, a wrong key and missing rows are reported with their reason."""

from __future__ import annotations

import json

import psycopg

from agent_platform.config import Settings
from agent_platform.db.migrate import head_revision
from agent_platform.db.urls import libpq_url
from tests.integration.backups.conftest import BACKUP_KEY, run_backup
from tests.support.factories import ConnectedAgent

SCRATCH_DATABASES = "SELECT datname FROM pg_database WHERE datname LIKE 'ap\\_verify\\_%'"


def scratch_databases(database_url: str) -> set[str]:
    with psycopg.connect(libpq_url(database_url)) as connection:
        return {name for (name,) in connection.execute(SCRATCH_DATABASES).fetchall()}


def created(settings: Settings, **env: str) -> dict[str, object]:
    done = run_backup(settings, "create", "--json", **env)
    assert done.exit_code == 0, done.stderr
    manifest: dict[str, object] = json.loads(done.stdout)
    return manifest


async def test_a_backup_is_listed_and_verifies_with_the_counts_it_was_taken_with(
    settings: Settings, seeded: ConnectedAgent, database_url: str
) -> None:
    manifest = created(settings)
    counts = manifest["row_counts"]
    assert isinstance(counts, dict)
    assert (counts["organizations"], counts["agents"], counts["crm_connections"]) == (1, 1, 1)
    assert (manifest["revision"], manifest["encrypted"]) == (head_revision(), False)

    listed = run_backup(settings, "list", "--json")
    assert [backup["id"] for backup in json.loads(listed.stdout)] == [manifest["id"]]

    scratch_before = scratch_databases(database_url)
    verified = run_backup(settings, "verify", "--json")

    assert verified.exit_code == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert (report["backup_id"], report["ok"], report["problems"]) == (manifest["id"], True, [])
    assert report["row_counts"] == counts
    assert scratch_databases(database_url) <= scratch_before, "the scratch database is dropped"


async def test_an_encrypted_backup_verifies_with_its_key_only(
    settings: Settings, seeded: ConnectedAgent
) -> None:
    manifest = created(settings, BACKUP_ENCRYPTION_KEY=BACKUP_KEY)
    assert manifest["encrypted"] is True
    stored = (settings.backup_directory / str(manifest["file"])).read_bytes()
    assert b"PGDMP" not in stored, "pg_dump's archive header would show through"

    right = run_backup(settings, "verify", "--json", BACKUP_ENCRYPTION_KEY=BACKUP_KEY)
    wrong = run_backup(settings, "verify", BACKUP_ENCRYPTION_KEY="x" * 40)
    missing = run_backup(settings, "verify")

    assert right.exit_code == 0, right.stdout + right.stderr
    assert json.loads(right.stdout)["ok"] is True
    assert wrong.exit_code == 2
    assert wrong.stderr.splitlines() == [
        "Backup error: wrong backup key: BACKUP_ENCRYPTION_KEY is not the one it was made with"
    ]
    assert missing.exit_code == 2
    assert "is encrypted: set BACKUP_ENCRYPTION_KEY" in missing.stderr


async def test_damage_and_missing_rows_fail_verification_saying_why(
    settings: Settings, seeded: ConnectedAgent
) -> None:
    manifest = created(settings)
    dump = settings.backup_directory / str(manifest["file"])
    original = dump.read_bytes()

    dump.write_bytes(original[: len(original) // 2])
    truncated = run_backup(settings, "verify", "--json")
    flipped = bytearray(original)
    flipped[len(original) // 2] ^= 0xFF
    dump.write_bytes(bytes(flipped))
    corrupted = run_backup(settings, "verify")
    # An intact file whose manifest counts a row that the dump does not hold.
    dump.write_bytes(original)
    manifest_path = settings.backup_directory / f"{manifest['id']}.json"
    stored = json.loads(manifest_path.read_text())
    stored["row_counts"]["organizations"] = 2
    manifest_path.write_text(json.dumps(stored))
    short = run_backup(settings, "verify", "--json")

    assert truncated.exit_code == 1
    assert json.loads(truncated.stdout)["problems"] == [
        f"checksum mismatch: {manifest['file']} has {len(original) // 2} bytes, the manifest "
        f"says {len(original)} (truncated or replaced)"
    ]
    assert corrupted.exit_code == 1
    assert "failed" in corrupted.stdout
    assert "checksum mismatch: the sha256" in corrupted.stdout
    assert short.exit_code == 1
    assert json.loads(short.stdout)["problems"] == [
        "row count of organizations: 2 in the backup, 1 restored"
    ]
