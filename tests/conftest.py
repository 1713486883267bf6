"""Shared fixtures: a real PostgreSQL (TEST_DATABASE_URL, else embedded), settings, fakes."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import hypothesis
import psycopg
import pytest
from alembic import command
from psycopg import sql
from pydantic import SecretStr

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.db.embedded import start_embedded_postgres
from agent_platform.db.migrate import alembic_config
from agent_platform.db.urls import libpq_url
from agent_platform.services import Services, open_services
from tests.fakes.openai_server import create_fake_openai_app
from tests.support.factories import ConnectedAgent, create_connected_agent
from tests.support.servers import serve_app

# Property tests check what is drawn, not how fast: on a loaded CI machine (2 cores, the
# suite's servers alongside) drawing can be slow, which is no failure of the code under test.
hypothesis.settings.register_profile(
    "suite", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile("suite")

# Every table but the migration marker: ours, procrastinate's and any later migration's.
_TABLES = (
    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
)
# Sequences start again, as TRUNCATE ... RESTART IDENTITY would.
_RESTART_SEQUENCES = (
    "SELECT setval(oid::regclass, 1, false) FROM pg_class "
    "WHERE relkind = 'S' AND relnamespace = 'public'::regnamespace"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    """An administrative URL of a PostgreSQL server the tests may create databases on."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ap-test-pg-"))
    embedded = start_embedded_postgres(data_dir)
    try:
        yield embedded.url
    finally:
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _database_url(server_url: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(libpq_url(server_url))
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def database_url(database_server_url: str) -> Iterator[str]:
    """A fresh database, migrated to head, for this test session only."""
    name = f"ap_test_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    info = psycopg.conninfo.conninfo_to_dict(_database_url(database_server_url, name))
    url = _as_url(info)
    command.upgrade(alembic_config(url), "head")
    try:
        yield url
    finally:
        with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_url(info: dict[str, object]) -> str:
    """A postgresql:// URL from conninfo parts (host may be a socket directory)."""
    user = info.get("user") or "postgres"
    password = f":{info['password']}" if info.get("password") else ""
    host = str(info.get("host") or "")
    port = info.get("port") or 5432
    if host.startswith("/"):
        return f"postgresql://{user}{password}@/{info['dbname']}?host={host}&port={port}"
    return f"postgresql://{user}{password}@{host}:{port}/{info['dbname']}"


@pytest.fixture
def clean_database(database_url: str) -> str:
    """The test database with every table emptied.

    DELETE, not TRUNCATE: truncating makes new files for all ~35 tables, ten times slower on
    tables holding a handful of rows. The replica role skips foreign-key checks and triggers, so
    the order of the tables does not matter (the tests' server role is a superuser).
    """
    with psycopg.connect(libpq_url(database_url)) as connection:
        connection.execute("SET LOCAL session_replication_role = replica")
        for (table,) in connection.execute(_TABLES).fetchall():
            connection.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(table)))
        connection.execute(_RESTART_SEQUENCES)
    return database_url


@pytest.fixture
def fake_llm_url() -> Iterator[str]:
    with serve_app(create_fake_openai_app(reply="Our prices start at 100 USD.")) as url:
        yield url


@pytest.fixture
def sandbox() -> Iterator[tuple[str, str]]:
    """(base URL, access token) of a fresh Kommo sandbox."""
    token = secrets.token_urlsafe(16)
    with serve_app(create_sandbox_app(token)) as url:
        yield url, token


def make_settings(
    database_url: str, data_dir: Path, fake_llm_url: str, **overrides: Any
) -> Settings:
    """Settings of a test platform: strong random keys, the fake LLM, a free worker port."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "encryption_key": SecretStr(secrets.token_urlsafe(40)),
        "secret_key": SecretStr(secrets.token_urlsafe(40)),
        "openrouter_api_key": SecretStr("test-key"),
        "llm_base_url": f"{fake_llm_url}/v1",
        "llm_default_model": "test/model",
        "worker_health_port": free_port(),
    }
    return Settings(**(values | overrides))


@pytest.fixture
def settings(tmp_path: Path, clean_database: str, fake_llm_url: str) -> Settings:
    return make_settings(
        clean_database,
        tmp_path / "data",
        fake_llm_url,
        job_stalled_after_seconds=3,
        job_stalled_check_seconds=1,
    )


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    assert settings.database_url
    async with open_services(settings, settings.database_url) as opened:
        yield opened


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    assert settings.database_url
    with serve_app(create_app(settings, settings.database_url)) as url:
        yield url


@pytest.fixture
async def connected(services: Services, sandbox: tuple[str, str]) -> ConnectedAgent:
    return await create_connected_agent(services, kommo_url=sandbox[0], kommo_token=sandbox[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """TEST_REDIS_URL, else a private redis-server when the binary exists, else skip (says why)."""
    external = os.environ.get("TEST_REDIS_URL")
    if external:
        yield external
        return
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("Redis tests need TEST_REDIS_URL or a redis-server binary; neither was found")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_for_port(port: int, attempts: int = 200) -> None:
    for _ in range(attempts):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")
