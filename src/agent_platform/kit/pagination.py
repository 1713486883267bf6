"""Cursor pagination for lists shown newest first.

    page = PageRequest.parse(limit, cursor)          # 400 invalid_cursor for a forged cursor
    rows = await session.scalars(newest_first(select(Row), Row.created_at, Row.id, page))
    found = page.cut(list(rows))                     # the page's rows and the next cursor
    return Page[RowOut](items=[RowOut.of(r) for r in found.items], next_cursor=found.next_cursor)

The cursor is opaque to clients: the (created_at, id) of the last row shown, so that rows
added meanwhile neither shift a page nor appear twice, which an offset cannot promise. The id
breaks ties between rows created in one transaction (they share `now()`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, Protocol, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from agent_platform.kit.errors import AppError

DEFAULT_LIMIT = 50
MAX_LIMIT = 100

PageLimit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"At most this many items (≤ {MAX_LIMIT}).")
]
PageCursor = Annotated[
    str | None,
    Query(max_length=200, description="`next_cursor` of the previous page; none for the first."),
]


class InvalidCursorError(AppError):
    code = "invalid_cursor"


class Positioned(Protocol):
    """A row a cursor can point at."""

    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> uuid.UUID: ...


RowT = TypeVar("RowT", bound=Positioned)
ItemT = TypeVar("ItemT")
SelectT = TypeVar("SelectT", bound=Select[Any])


@dataclass(frozen=True)
class Position:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps({"t": self.created_at.isoformat(), "id": str(self.id)})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            fields = json.loads(raw)
            position = cls(datetime.fromisoformat(fields["t"]), uuid.UUID(fields["id"]))
            if position.created_at.tzinfo is None:
                raise ValueError("a cursor's time is always zoned")
        except (ValueError, LookupError, TypeError) as exc:
            raise InvalidCursorError(
                "The cursor is not one this API gave; start again without it."
            ) from exc
        return position


@dataclass(frozen=True)
class RowsPage(Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None


@dataclass(frozen=True)
class PageRequest:
    limit: int = DEFAULT_LIMIT
    after: Position | None = None

    @classmethod
    def parse(cls, limit: int, cursor: str | None) -> PageRequest:
        return cls(limit=limit, after=Position.decode(cursor) if cursor else None)

    def cut(self, rows: Sequence[RowT]) -> RowsPage[RowT]:
        """The page of rows fetched by `newest_first` (which asks for one row more than shown:
        its presence is how we know a next page exists)."""
        items = list(rows[: self.limit])
        if len(rows) <= self.limit:
            return RowsPage(items, None)
        last = items[-1]
        return RowsPage(items, Position(last.created_at, last.id).encode())


def newest_first(
    statement: SelectT,
    created_at_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    page: PageRequest,
) -> SelectT:
    """`statement` ordered newest first, from after the page's position, one row more than
    the page shows."""
    if page.after is not None:
        statement = statement.where(
            tuple_(created_at_column, id_column) < tuple_(page.after.created_at, page.after.id)
        )
    return statement.order_by(created_at_column.desc(), id_column.desc()).limit(page.limit + 1)


class Page(BaseModel, Generic[ItemT]):
    """A page of a list; `next_cursor` is null on the last one."""

    items: list[ItemT]
    next_cursor: str | None
