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
from agent_platform.automation.resources import newest_rows
from agent_platform.kit.pagination import PageRequest


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
    equal_to = {Sequence.agent_id: agent_id, Sequence.enabled: enabled}
    return await newest_rows(session, Sequence, organization_id, page, equal_to)


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
    equal_to = {Enrollment.status: None if status is None else status.value}
    return await newest_rows(
        session, Enrollment, organization_id, page, equal_to, Enrollment.sequence_id == sequence_id
    )
