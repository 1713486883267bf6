"""What the rules, triggers and sequences APIs share: their rows saved, looked up (a 404 when
not the organization's), listed newest first, changed by a PATCH, switched on and off and
deleted the same way, and the fields their answers share. The run log and enrollments reuse
the lookup and the list.

Each helper takes the model class (or a `Resource` holds it); the TypeVars name exactly the
tables a helper serves, so mypy checks its body against each of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from agent_platform.automation.models import (
    AutomationRule,
    AutomationRun,
    Enrollment,
    Sequence,
    Trigger,
)
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import NotFoundError
from agent_platform.kit.pagination import PageRequest, newest_first
from agent_platform.services import Services

# A rule, trigger or sequence: named, enabled or not, edited through the API.
Editable = TypeVar("Editable", AutomationRule, Trigger, Sequence)
# Any automation table the API reads by id or lists.
Listed = TypeVar("Listed", AutomationRule, Trigger, Sequence, Enrollment, AutomationRun)


async def saved(session: AsyncSession, row: Editable) -> Editable:
    """The row flushed and read back: created_at and updated_at come from the database."""
    session.add(row)
    await session.flush()
    await session.refresh(row)
    return row


async def delete(session: AsyncSession, row: Editable) -> None:
    await session.delete(row)
    await session.flush()


async def row_of(
    session: AsyncSession,
    model: type[Listed],
    organization_id: uuid.UUID,
    row_id: uuid.UUID,
    *,
    for_update: bool = False,
) -> Listed | None:
    statement = select(model).where(model.organization_id == organization_id, model.id == row_id)
    return await session.scalar(statement.with_for_update() if for_update else statement)


async def newest_rows(
    session: AsyncSession,
    model: type[Listed],
    organization_id: uuid.UUID,
    page: PageRequest,
    equal_to: Mapping[InstrumentedAttribute[Any], object],
    *conditions: ColumnElement[bool],
) -> list[Listed]:
    """The organization's rows for the page, newest first: those whose columns equal the
    values of `equal_to` (None: any value) and that meet the further `conditions`."""
    statement = select(model).where(model.organization_id == organization_id, *conditions)
    for column, value in equal_to.items():
        if value is not None:
            statement = statement.where(column == value)
    return list(await session.scalars(newest_first(statement, model.created_at, model.id, page)))


def apply_sent(
    row: Editable, patch: BaseModel, fields: Iterable[str], *, nullable: Iterable[str] = ()
) -> None:
    """A PATCH's simple fields set on the row, only those sent. One of `fields` sent as null
    is ignored (its column takes no null); one of `nullable` sent as null clears it."""
    sent = patch.model_fields_set
    for name in fields:
        value = getattr(patch, name)
        if name in sent and value is not None:
            setattr(row, name, value)
    for name in nullable:
        if name in sent:
            setattr(row, name, getattr(patch, name))


class RowNotFoundError(NotFoundError):
    """A 404 naming the kind of row that is not the organization's."""

    noun: ClassVar[str]

    def __init__(self, row_id: uuid.UUID) -> None:
        super().__init__(f"No {self.noun} {row_id} in this organization.")


@dataclass(frozen=True)
class Resource(Generic[Editable]):
    """Rules, triggers or sequences: their table and the error when one is not found."""

    model: type[Editable]
    missing: type[RowNotFoundError]

    async def found(
        self,
        session: AsyncSession,
        organization_id: uuid.UUID,
        row_id: uuid.UUID,
        *,
        for_update: bool = False,
    ) -> Editable:
        """The organization's row, or the resource's 404."""
        row = await row_of(session, self.model, organization_id, row_id, for_update=for_update)
        if row is None:
            raise self.missing(row_id)
        return row

    async def get(
        self, services: Services, organization_id: uuid.UUID, row_id: uuid.UUID
    ) -> Editable:
        async with tenant_transaction(services.sessions, organization_id) as session:
            return await self.found(session, organization_id, row_id)

    async def set_enabled(
        self, services: Services, organization_id: uuid.UUID, row_id: uuid.UUID, enabled: bool
    ) -> Editable:
        async with tenant_transaction(services.sessions, organization_id) as session:
            row = await self.found(session, organization_id, row_id, for_update=True)
            row.enabled = enabled
            return await saved(session, row)


class EditableOut(BaseModel):
    """The fields a rule, trigger and sequence answer alike; each adds its own."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    enabled: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: AutomationRule | Trigger | Sequence) -> Self:
        return cls.model_validate(row)
