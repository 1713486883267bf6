"""Re-encrypting every stored secret from ENCRYPTION_KEY_PREVIOUS to ENCRYPTION_KEY, then
checking that the new key alone reads them all.

Resumable without a progress marker: a value the new key decrypts is left as it is, so a run
after an interruption skips what the last one finished (and whatever the platform wrote
meanwhile, always under the new key). Each batch is its own short transaction, so the
platform keeps working, and a value is replaced only if it is still the one read, so a token
the platform refreshed in the meantime is never overwritten with the older one.

The connection is the platform's own (the tables' owner), never scoped to an organization:
row-level security applies to the tenant role only, so every organization's rows are seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from pydantic import BaseModel, Field, computed_field
from rich.progress import Progress
from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_platform.db.session import create_engine, create_session_factory, transaction
from agent_platform.kit.crypto import DecryptionError, SecretBox
from agent_platform.ops.key_rotation.registry import ENCRYPTED_COLUMNS, EncryptedColumn

Batch = Sequence[tuple[uuid.UUID, str]]
OnBatch = Callable[[int], None]


class ColumnReport(BaseModel):
    table: str
    column: str
    rotated: int = 0
    already_current: int = 0
    # Ids of rows whose value decrypts under neither key: left as they are.
    unreadable: list[str] = Field(default_factory=list)
    verified: int = 0
    # Ids of rows the new key alone could not read when the rotation was done.
    not_verified: list[str] = Field(default_factory=list)


class RotationReport(BaseModel):
    columns: list[ColumnReport]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not any(report.unreadable or report.not_verified for report in self.columns)


async def rotate_database(
    database_url: str, box: SecretBox, *, batch_size: int, progress: Progress
) -> RotationReport:
    """Rotate every encrypted column of the platform's database, then verify them all."""
    engine = create_engine(database_url, pool_size=1)
    try:
        sessions = create_session_factory(engine)
        with progress:
            total = await count_values(sessions)
            rotating = progress.add_task("Re-encrypting", total=total)
            reports = await rotate_values(
                sessions,
                box,
                batch_size=batch_size,
                on_batch=lambda n: progress.advance(rotating, n),
            )
            verifying = progress.add_task("Verifying", total=await count_values(sessions))
            await verify_values(
                sessions,
                box,
                reports,
                batch_size=batch_size,
                on_batch=lambda n: progress.advance(verifying, n),
            )
        return RotationReport(columns=reports)
    finally:
        await engine.dispose()


async def count_values(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with transaction(sessions) as session:
        total = 0
        for encrypted in ENCRYPTED_COLUMNS:
            query = select(func.count()).where(encrypted.column.is_not(None))
            total += (await session.execute(query)).scalar_one()
        return total


async def rotate_values(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    *,
    batch_size: int,
    on_batch: OnBatch,
) -> list[ColumnReport]:
    """Every value not yet under the new key re-encrypted under it, one batch per transaction."""
    return [
        await _rotate_column(sessions, box, encrypted, batch_size, on_batch)
        for encrypted in ENCRYPTED_COLUMNS
    ]


async def verify_values(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    reports: list[ColumnReport],
    *,
    batch_size: int,
    on_batch: OnBatch,
) -> None:
    """Count, in `reports`, the values the new key alone reads and the rows it cannot."""
    for encrypted, report in zip(ENCRYPTED_COLUMNS, reports, strict=True):
        await _verify_column(sessions, box, encrypted, report, batch_size, on_batch)


async def _rotate_column(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    encrypted: EncryptedColumn,
    batch_size: int,
    on_batch: OnBatch,
) -> ColumnReport:
    report = ColumnReport(table=encrypted.table.name, column=encrypted.column.name)
    # Compare and swap: a value changed since it was read is no longer ours to replace.
    replace = (
        encrypted.table.update()
        .where(encrypted.row_id == bindparam("row_id"))
        .where(encrypted.column == bindparam("stored"))
        .values({encrypted.column: bindparam("rotated")})
    )

    async def rotate(session: AsyncSession, batch: Batch) -> None:
        changes = []
        for row_id, stored in batch:
            if box.is_current(stored):
                report.already_current += 1
                continue
            try:
                plaintext = box.decrypt(stored)
            except DecryptionError:
                report.unreadable.append(str(row_id))
                continue
            changes.append({"row_id": row_id, "stored": stored, "rotated": box.encrypt(plaintext)})
        if changes:
            await session.execute(replace, changes)
        report.rotated += len(changes)

    await _for_each_batch(sessions, encrypted, batch_size, rotate, on_batch)
    return report


async def _verify_column(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    encrypted: EncryptedColumn,
    report: ColumnReport,
    batch_size: int,
    on_batch: OnBatch,
) -> None:
    async def verify(_: AsyncSession, batch: Batch) -> None:
        for row_id, stored in batch:
            if box.is_current(stored):
                report.verified += 1
            else:
                report.not_verified.append(str(row_id))

    await _for_each_batch(sessions, encrypted, batch_size, verify, on_batch)


async def _for_each_batch(
    sessions: async_sessionmaker[AsyncSession],
    encrypted: EncryptedColumn,
    batch_size: int,
    handle: Callable[[AsyncSession, Batch], Awaitable[None]],
    on_batch: OnBatch,
) -> None:
    """`handle` each batch of non-null values, in primary-key order, in its own transaction."""
    after: uuid.UUID | None = None
    while True:
        query = (
            select(encrypted.row_id, encrypted.column)
            .where(encrypted.column.is_not(None))
            .order_by(encrypted.row_id)
            .limit(batch_size)
        )
        if after is not None:
            query = query.where(encrypted.row_id > after)
        async with transaction(sessions) as session:
            # Only non-null values are selected.
            batch = cast(Batch, (await session.execute(query)).all())
            if not batch:
                return
            await handle(session, batch)
        # Counted once committed: an interruption leaves only whole batches done.
        on_batch(len(batch))
        after = batch[-1][0]
