"""`agent-platform secrets rotate-key`: every stored secret of every organization moves from
ENCRYPTION_KEY_PREVIOUS to ENCRYPTION_KEY, resumably, while the platform reads both."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_platform.config import Settings
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import create_engine, create_session_factory, transaction
from agent_platform.kit.crypto import DecryptionError, SecretBox
from agent_platform.ops.key_rotation.keys import rotation_box
from agent_platform.ops.key_rotation.rotation import rotate_values
from agent_platform.organization.models import Organization, User
from agent_platform.services import secret_box
from tests.support.processes import platform_env, run_cli

OLD_KEY, NEW_KEY = secrets.token_urlsafe(40), secrets.token_urlsafe(40)
SECRET_KEY = secrets.token_urlsafe(40)
CONNECTION_COLUMNS = ("access_token_encrypted", "refresh_token_encrypted", "chats_secret_encrypted")
# (table.column, row id) -> the value as stored
Stored = dict[tuple[str, uuid.UUID], str]


class RotationInterruptedError(Exception):
    """Stands for the process dying between two batches."""


@pytest.fixture
async def sessions(clean_database: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(clean_database, pool_size=1)
    yield create_session_factory(engine)
    await engine.dispose()


async def seed_organization(sessions: async_sessionmaker[AsyncSession], box: SecretBox) -> None:
    """An organization with an OAuth connection (tokens and a Chats secret), a long-lived-token
    connection (no refresh token) and a user with two-factor sign-in, one without."""
    async with transaction(sessions) as session:
        organization = Organization(name="Acme", slug=f"acme-{secrets.token_hex(4)}")
        session.add(organization)
        await session.flush()
        session.add_all(
            [
                CrmConnection(
                    organization_id=organization.id,
                    subdomain="acme",
                    base_url="https://acme.kommo.com",
                    webhook_token=secrets.token_urlsafe(16),
                    access_token_encrypted=box.encrypt(f"access-{secrets.token_hex(8)}"),
                    refresh_token_encrypted=box.encrypt(f"refresh-{secrets.token_hex(8)}"),
                    chats_secret_encrypted=box.encrypt(f"chats-{secrets.token_hex(8)}"),
                ),
                CrmConnection(
                    organization_id=organization.id,
                    subdomain="acme-two",
                    base_url="https://acme-two.kommo.com",
                    webhook_token=secrets.token_urlsafe(16),
                    access_token_encrypted=box.encrypt(f"long-lived-{secrets.token_hex(8)}"),
                ),
                User(
                    email=f"{secrets.token_hex(4)}@example.com",
                    totp_secret_encrypted=box.encrypt(f"TOTP{secrets.token_hex(8)}"),
                ),
                User(email=f"{secrets.token_hex(4)}@example.com"),
            ]
        )


async def stored_values(sessions: async_sessionmaker[AsyncSession]) -> Stored:
    async with transaction(sessions) as session:
        connections = (await session.execute(select(CrmConnection))).scalars().all()
        users = (await session.execute(select(User))).scalars().all()
    stored: Stored = {}
    for connection in connections:
        for column in CONNECTION_COLUMNS:
            if (value := getattr(connection, column)) is not None:
                stored[(f"crm_connections.{column}", connection.id)] = value
    for user in users:
        if user.totp_secret_encrypted is not None:
            stored[("users.totp_secret_encrypted", user.id)] = user.totp_secret_encrypted
    return stored


def decrypted(stored: Stored, box: SecretBox) -> dict[tuple[str, uuid.UUID], str]:
    return {place: box.decrypt(value) for place, value in stored.items()}


def readable_by(box: SecretBox, stored: Stored) -> int:
    """How many of the stored values `box` decrypts."""
    count = 0
    for value in stored.values():
        try:
            box.decrypt(value)
        except DecryptionError:
            continue
        count += 1
    return count


def rotate_key(
    tmp_path: Path, *args: str, database_url: str, previous_key: str | None = OLD_KEY
) -> tuple[int, str, str]:
    env = platform_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        ENCRYPTION_KEY=NEW_KEY,
        ENCRYPTION_KEY_PREVIOUS=previous_key,
        SECRET_KEY=SECRET_KEY,
    )
    done = run_cli(["secrets", "rotate-key", *args], env=env, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def counts(report: dict[str, object], figure: str) -> dict[str, object]:
    columns = report["columns"]
    assert isinstance(columns, list)
    return {f"{column['table']}.{column['column']}": column[figure] for column in columns}


async def test_every_value_of_every_organization_is_re_encrypted_and_a_stranger_reported(
    sessions: async_sessionmaker[AsyncSession], clean_database: str, tmp_path: Path
) -> None:
    for _ in range(2):
        await seed_organization(sessions, SecretBox(OLD_KEY))
    plaintexts = decrypted(await stored_values(sessions), SecretBox(OLD_KEY))
    async with transaction(sessions) as session:
        stranger = User(
            email="stranger@example.com",
            totp_secret_encrypted=SecretBox(secrets.token_urlsafe(40)).encrypt("TOTPSECRET"),
        )
        session.add(stranger)
    foreign = ("users.totp_secret_encrypted", stranger.id)
    before = await stored_values(sessions)

    code, stdout, stderr = rotate_key(
        tmp_path, "--batch-size", "2", "--json", database_url=clean_database
    )

    assert code == 1, stderr
    report = json.loads(stdout)
    per_column = {
        "crm_connections.access_token_encrypted": 4,
        "crm_connections.refresh_token_encrypted": 2,
        "crm_connections.chats_secret_encrypted": 2,
        "users.totp_secret_encrypted": 2,
    }
    assert counts(report, "rotated") == per_column
    assert counts(report, "verified") == per_column
    unreported: dict[str, object] = {name: [] for name in per_column} | {
        foreign[0]: [str(stranger.id)]
    }
    assert counts(report, "unreadable") == unreported
    assert counts(report, "not_verified") == unreported
    assert report["ok"] is False
    after = await stored_values(sessions)
    assert after.pop(foreign) == before[foreign]  # left as it was
    assert decrypted(after, SecretBox(NEW_KEY)) == plaintexts
    assert readable_by(SecretBox(OLD_KEY), after) == 0


async def test_an_interrupted_rotation_resumes_while_the_platform_reads_both_keys(
    sessions: async_sessionmaker[AsyncSession], clean_database: str, tmp_path: Path
) -> None:
    await seed_organization(sessions, SecretBox(OLD_KEY))
    await seed_organization(sessions, SecretBox(OLD_KEY))
    plaintexts = decrypted(await stored_values(sessions), SecretBox(OLD_KEY))
    platform_settings = Settings(
        encryption_key=SecretStr(NEW_KEY), encryption_key_previous=SecretStr(OLD_KEY)
    )

    def die_after_first_batch(_: int) -> None:
        raise RotationInterruptedError

    with pytest.raises(RotationInterruptedError):
        await rotate_values(
            sessions,
            rotation_box(platform_settings),
            batch_size=1,
            on_batch=die_after_first_batch,
        )

    halfway = await stored_values(sessions)
    (done,) = [place for place, value in halfway.items() if SecretBox(NEW_KEY).is_current(value)]
    # The platform's own box (Services.secrets) reads old and new values alike meanwhile.
    assert decrypted(halfway, secret_box(platform_settings)) == plaintexts

    code, stdout, stderr = rotate_key(tmp_path, database_url=clean_database)

    assert code == 0, stderr
    assert "Key rotation" in stdout  # the table of figures per column
    assert "Every value is readable with ENCRYPTION_KEY alone." in stdout
    after = await stored_values(sessions)
    assert after[done] == halfway[done]  # recognised as rotated: not encrypted again
    assert decrypted(after, SecretBox(NEW_KEY)) == plaintexts


def test_wrong_keys_or_no_database_are_refused_in_one_line(tmp_path: Path) -> None:
    unreachable = "postgresql://nobody@127.0.0.1:9/none"
    cases: dict[str, tuple[str | None, int, str]] = {
        "no previous key": (None, 2, "ENCRYPTION_KEY_PREVIOUS is not set"),
        "same key twice": (NEW_KEY, 2, "the same as ENCRYPTION_KEY"),
        "no database": (OLD_KEY, 3, "Database error: connection failed"),
    }
    # Started together: each is an interpreter start-up.
    with ThreadPoolExecutor(len(cases)) as pool:
        runs = {
            name: pool.submit(
                rotate_key,
                tmp_path / name,
                "--json",
                database_url=unreachable,
                previous_key=previous_key,
            )
            for name, (previous_key, _, _) in cases.items()
        }
    for name, (_, expected_code, message) in cases.items():
        code, stdout, stderr = runs[name].result()
        assert code == expected_code, f"{name}: {stderr}"
        assert message in stderr, name
        assert len(stderr.strip().splitlines()) == 1, f"{name}: {stderr}"
        assert stdout == "", name
