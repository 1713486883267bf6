"""What backups ask of PostgreSQL: connections, versions, row counts, scratch databases."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from agent_platform.db.session import TENANT_ROLE
from agent_platform.db.urls import libpq_url
from agent_platform.ops.backups.model import (
    BackupError,
    BackupFailedError,
    DatabaseUnreachableError,
    ProgressCallback,
)

SCRATCH_PREFIX = "ap_verify_"
_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
# Relations outside the system schemas: a database holding none is empty enough to restore into.
_USER_RELATIONS = """
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
"""
# pg_dump does not dump roles; the tenant role's grants and policies need it (migration 0001).
_ENSURE_TENANT_ROLE = f"""
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{TENANT_ROLE}') THEN
            CREATE ROLE {TENANT_ROLE} NOLOGIN;
        END IF;
        IF NOT pg_has_role(current_user, '{TENANT_ROLE}', 'MEMBER') THEN
            EXECUTE format('GRANT {TENANT_ROLE} TO %I', current_user);
        END IF;
    END $$
"""


def conninfo(url: str) -> dict[str, str]:
    return {k: str(v) for k, v in psycopg.conninfo.conninfo_to_dict(_libpq(url)).items()}


def database_name(url: str) -> str:
    return conninfo(url).get("dbname", "")


def describe_database(url: str) -> str:
    """ "name on host:port", for a person to recognise (no password)."""
    info = conninfo(url)
    where = info.get("host") or "localhost"
    return f"{info.get('dbname', '?')} on {where}:{info.get('port') or 5432}"


def with_database(url: str, name: str) -> str:
    """The URL of another database on the same server, with the same credentials."""
    return make_url(_libpq(url)).set(database=name).render_as_string(hide_password=False)


def client_arguments(url: str) -> tuple[str, dict[str, str]]:
    """`--dbname` for pg_dump / pg_restore and the environment that carries the password:
    a password in the command line would be readable by every user of the machine (ps)."""
    info = conninfo(url)
    password = info.pop("password", None)
    return psycopg.conninfo.make_conninfo(**info), {"PGPASSWORD": password} if password else {}


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection:
    try:
        return psycopg.connect(_libpq(url), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnreachableError(
            f"cannot reach the database {describe_database(url)}: {_first_line(exc)}"
        ) from None


def server_version(connection: psycopg.Connection) -> str:
    """ "15.19": server_version_num is major * 10000 + minor since PostgreSQL 10."""
    number = connection.info.server_version
    return f"{number // 10000}.{number % 10000}"


def migration_revision(connection: psycopg.Connection) -> str | None:
    if connection.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,):
        return None
    row = connection.execute("SELECT version_num FROM public.alembic_version").fetchone()
    return None if row is None else str(row[0])


def count_rows(
    connection: psycopg.Connection, on_progress: ProgressCallback | None = None
) -> dict[str, int]:
    """Exact row counts of every table in the public schema.

    Row-level security is switched off, as pg_dump does: a role it would hide rows from gets
    an error instead of counts that are silently too small.
    """
    connection.execute("SET row_security = off")
    tables = [str(name) for (name,) in connection.execute(_TABLES).fetchall()]
    counts: dict[str, int] = {}
    for done, table in enumerate(tables, start=1):
        query = sql.SQL("SELECT count(*) FROM public.{}").format(sql.Identifier(table))
        row = connection.execute(query).fetchone()
        counts[table] = int(row[0]) if row else 0
        if on_progress:
            on_progress("Counting rows", done / len(tables))
    return counts


def user_relations(connection: psycopg.Connection) -> int:
    row = connection.execute(_USER_RELATIONS).fetchone()
    return int(row[0]) if row else 0


def ensure_tenant_role(connection: psycopg.Connection) -> None:
    connection.execute(_ENSURE_TENANT_ROLE)


def integrity_problems(connection: psycopg.Connection) -> list[str]:
    """Constraints left NOT VALID and indexes left invalid (a failed CREATE INDEX CONCURRENTLY)."""
    constraints = connection.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE NOT convalidated ORDER BY 1, 2"
    ).fetchall()
    indexes = connection.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1"
    ).fetchall()
    return [f"constraint {name} on {table} is not validated" for table, name in constraints] + [
        f"index {name} is not valid" for (name,) in indexes
    ]


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """A new empty database on `url`'s server, dropped on the way out whatever happened."""
    name = f"{SCRATCH_PREFIX}{secrets.token_hex(4)}"
    identifier = sql.Identifier(name)
    with connect(url, autocommit=True) as admin:
        try:
            ensure_tenant_role(admin)
            # template0: nothing a site added to template1 may collide with the restore.
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(identifier))
        except psycopg.Error as exc:
            raise BackupFailedError(
                f"cannot create a scratch database: {_first_line(exc)}"
            ) from None
        try:
            yield with_database(url, name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier))


def _libpq(url: str) -> str:
    try:
        return libpq_url(url)
    except ArgumentError:
        raise BackupError(f"{url!r} is not a database URL (postgresql://…)") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
