"""Every query of the sequences API on sequences and their enrollments, scoped by the
organization. (The enrollment's own life — enrolling, stopping, the step job — is in
sequences.enrollment.)"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import String, cast, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import (
    OPEN_ENROLLMENT_STATUSES,
    Enrollment,
    EnrollmentStatus,
    Sequence,
    Trigger,
)
from agent_platform.kit.pagination import PageRequest, newest_first


async def add_sequence(session: AsyncSession, sequence: Sequence) -> Sequence:
    session.add(sequence)
    await session.flush()
    await session.refresh(sequence)  # created_at and updated_at come from the database
    return sequence


async def sequence_of(
    session: AsyncSession,
    organization_id: uuid.UUID,
    sequence_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Sequence | None:
    statement = select(Sequence).where(
        Sequence.organization_id == organization_id, Sequence.id == sequence_id
    )
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def sequence_ids_in(
    session: AsyncSession, organization_id: uuid.UUID, sequence_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Those of `sequence_ids` that are the organization's sequences."""
    if not sequence_ids:
        return set()
    found = await session.scalars(
        select(Sequence.id).where(
            Sequence.organization_id == organization_id, Sequence.id.in_(list(sequence_ids))
        )
    )
    return set(found)


async def list_sequences(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    enabled: bool | None,
    page: PageRequest,
) -> list[Sequence]:
    statement = select(Sequence).where(Sequence.organization_id == organization_id)
    if agent_id is not None:
        statement = statement.where(Sequence.agent_id == agent_id)
    if enabled is not None:
        statement = statement.where(Sequence.enabled == enabled)
    result = await session.scalars(newest_first(statement, Sequence.created_at, Sequence.id, page))
    return list(result)


async def users_of_sequence(
    session: AsyncSession, organization_id: uuid.UUID, sequence_id: uuid.UUID
) -> list[str]:
    """The triggers and other sequences whose actions name the sequence, as "trigger <id>"."""
    # A sequence id is a UUID: found in the JSON's text only where an action names it.
    needle = f'%"{sequence_id}"%'
    triggers = await session.scalars(
        select(Trigger.id).where(
            Trigger.organization_id == organization_id,
            cast(Trigger.actions, String).like(needle),
        )
    )
    sequences = await session.scalars(
        select(Sequence.id).where(
            Sequence.organization_id == organization_id,
            Sequence.id != sequence_id,
            cast(Sequence.steps, String).like(needle),
        )
    )
    return [f"trigger {found}" for found in triggers] + [f"sequence {found}" for found in sequences]


async def delete_sequence(session: AsyncSession, sequence: Sequence) -> None:
    await session.delete(sequence)
    await session.flush()


async def open_enrollments_of(
    session: AsyncSession, organization_id: uuid.UUID, sequence_id: uuid.UUID
) -> list[Enrollment]:
    result = await session.scalars(
        select(Enrollment)
        .where(
            Enrollment.organization_id == organization_id,
            Enrollment.sequence_id == sequence_id,
            Enrollment.status.in_(OPEN_ENROLLMENT_STATUSES),
        )
        .with_for_update()
    )
    return list(result)


async def list_enrollments(
    session: AsyncSession,
    organization_id: uuid.UUID,
    sequence_id: uuid.UUID,
    status: EnrollmentStatus | None,
    page: PageRequest,
) -> list[Enrollment]:
    statement = select(Enrollment).where(
        Enrollment.organization_id == organization_id, Enrollment.sequence_id == sequence_id
    )
    if status is not None:
        statement = statement.where(Enrollment.status == status.value)
    result = await session.scalars(
        newest_first(statement, Enrollment.created_at, Enrollment.id, page)
    )
    return list(result)
