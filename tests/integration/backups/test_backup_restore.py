"""`backup restore`: into an empty database after confirmation; a database that is not empty
only with --clean; bad input answered in one line with exit code 2 (3: no database)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from agent_platform.config import Settings
from agent_platform.db.migrate import head_revision
from agent_platform.db.urls import libpq_url
from tests.integration.backups.conftest import run_backup
from tests.support.factories import ConnectedAgent


@pytest.fixture
def empty_database(database_server_url: str) -> Iterator[str]:
    name = f"ap_restore_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield (
            make_url(libpq_url(database_server_url))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(libpq_url(url)) as connection:
        return connection.execute(query).fetchall()


async def test_a_backup_restores_into_an_empty_database_once_confirmed(
    settings: Settings, seeded: ConnectedAgent, empty_database: str
) -> None:
    created = run_backup(settings, "create", "--json")
    backup_id = json.loads(created.stdout)["id"]

    declined = run_backup(
        settings, "restore", backup_id, "--target-url", empty_database, answer="n\n"
    )
    assert declined.exit_code == 1
    assert rows(empty_database, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [
        (0,)
    ]

    restored = run_backup(
        settings, "restore", backup_id, "--target-url", empty_database, answer="y\n"
    )
    assert restored.exit_code == 0, restored.stderr
    assert f"Restored backup {backup_id} into ap_restore_" in restored.stdout
    assert rows(empty_database, "SELECT id FROM organizations") == [(seeded.organization_id,)]
    assert rows(empty_database, "SELECT id, agent_id FROM crm_connections") == [
        (seeded.connection_id, seeded.agent_id)
    ]
    assert rows(empty_database, "SELECT version_num FROM alembic_version") == [(head_revision(),)]

    again = run_backup(settings, "restore", backup_id, "--target-url", empty_database, "--yes")
    assert again.exit_code == 2
    assert "is not empty" in again.stderr
    assert "--clean" in again.stderr
    cleaned = run_backup(
        settings, "restore", backup_id, "--target-url", empty_database, "--yes", "--clean", "--json"
    )
    assert cleaned.exit_code == 0, cleaned.stderr
    assert json.loads(cleaned.stdout)["backup_id"] == backup_id
    assert rows(empty_database, "SELECT count(*) FROM organizations") == [(1,)]


async def test_bad_input_gets_one_line_and_its_exit_code(settings: Settings) -> None:
    cases = [
        (("verify",), {}, 2, f"Backup error: no backups in {settings.backup_directory}"),
        (("verify", "latest"), {}, 2, "is not a backup id"),
        (("restore", "20250101T000000Z-abcd", "--yes"), {}, 2, "no backup 20250101T000000Z-abcd"),
        (("create",), {"BACKUP_ENCRYPTION_KEY": "short"}, 2, "at least 32 characters"),
        (
            ("create",),
            {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"},
            3,
            "Database error: cannot reach the database nowhere on 127.0.0.1:1",
        ),
    ]
    for args, env, exit_code, said in cases:
        done = run_backup(settings, *args, **env)
        assert (done.exit_code, len(done.stderr.splitlines())) == (exit_code, 1), (
            args,
            done.stderr,
        )
        assert said in done.stderr, (args, done.stderr)
