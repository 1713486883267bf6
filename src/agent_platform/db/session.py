"""Engine, sessions and the per-transaction tenant scope."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from agent_platform.db.urls import sqlalchemy_url
from agent_platform.ops.query_metrics import instrument_engine

# The role tenant-scoped transactions switch to: it has no BYPASSRLS, so the row-level-security
# policies apply even when the platform connects as the tables' owner or a superuser.
TENANT_ROLE = "agent_platform_tenant"
TENANT_SETTING = "app.organization_id"


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=10,
    )
    instrument_engine(engine.sync_engine)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def scope_to_organization(session: AsyncSession, organization_id: uuid.UUID) -> None:
    """Limit the current transaction to one organization's rows (row-level security)."""
    await session.execute(text(f"SET LOCAL ROLE {TENANT_ROLE}"))
    await session.execute(
        text("SELECT set_config(:name, :value, true)"),
        {"name": TENANT_SETTING, "value": str(organization_id)},
    )


@asynccontextmanager
async def transaction(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose transaction commits on success and rolls back on any error."""
    async with factory() as session, session.begin():
        yield session


@asynccontextmanager
async def tenant_transaction(
    factory: async_sessionmaker[AsyncSession], organization_id: uuid.UUID
) -> AsyncIterator[AsyncSession]:
    """A transaction that sees and writes only one organization's rows (row-level security)."""
    async with transaction(factory) as session:
        await scope_to_organization(session, organization_id)
        yield session


async def raw_psycopg_connection(session: AsyncSession) -> Any:
    """The psycopg connection under `session`, for libraries that must join its transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    return raw.driver_connection
