"""The course every sandbox write takes, as Kommo's writes go.

A batch (`POST` or `PATCH` of a list) is checked item by item first and written only when no
item has an error: Kommo writes nothing of a batch it refuses, and its 400 names every failing
item. The answer has one row per item, in order. A single record's `PATCH /{key}/{id}` is the
same check and write for one item, answered with the record's id and new `updated_at`.

    @router.patch("/leads")
    async def update_leads(request, store, items: Batch[LeadUpdateIn]) -> Response:
        return update_batch(request, store, items, LEAD_UPDATES)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from fastapi import Request, Response

from agent_platform.crm.sandbox.api_common import (
    FieldError,
    HalJSONResponse,
    KommoItem,
    added_row,
    batch_answer,
    check_batch,
    not_found,
    self_link,
    validation_failed,
)
from agent_platform.crm.sandbox.store import SandboxStore

Changes = dict[str, Any]


class KommoUpdateItem(KommoItem):
    id: int | None = None  # required in a batch; taken from the path for a single record


class Updatable(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def updated_at(self) -> int: ...


ItemIn = TypeVar("ItemIn", bound=KommoItem)
UpdateIn = TypeVar("UpdateIn", bound=KommoUpdateItem)
Plan = TypeVar("Plan")
Record = TypeVar("Record", bound=Updatable)


def write_batch(
    request: Request,
    store: SandboxStore,
    key: str | None,
    items: Sequence[ItemIn],
    check: Callable[[ItemIn, str], tuple[list[FieldError], Plan]],
    write: Callable[[int, ItemIn, Plan], dict[str, Any]],
) -> Response:
    """Check every item (`check(item, request_id)` gives its errors and what `write` needs),
    then write each one (`write(index, item, plan)` gives its answer row), or none at all.

    The rows are answered under `_embedded[key]`, or as a bare array when `key` is None
    (`leads/complex`).
    """
    check_batch(store, items)
    checked = [check(item, item.rid(index)) for index, item in enumerate(items)]
    errors = [error for item_errors, _ in checked for error in item_errors]
    if errors:
        return validation_failed(errors)
    rows = [
        write(index, item, plan)
        for index, (item, (_, plan)) in enumerate(zip(items, checked, strict=True))
    ]
    return HalJSONResponse(rows) if key is None else batch_answer(request, key, rows)


@dataclass(frozen=True)
class RecordUpdates(Generic[Record, UpdateIn]):
    """How a PATCH changes one kind of record."""

    key: str  # the collection in paths and answers: "leads"
    name: str  # the record in messages: "Lead"
    find: Callable[[SandboxStore, int], Record | None]
    # The item's errors, and the changes to make when there are none.
    changes: Callable[[SandboxStore, Record, UpdateIn, str], tuple[list[FieldError], Changes]]
    apply: Callable[[SandboxStore, Record, Changes], Record]

    def path(self, record_id: int) -> str:
        return f"/api/v4/{self.key}/{record_id}"


class _Update(NamedTuple, Generic[Record]):
    record: Record
    changes: Changes


def update_batch(
    request: Request,
    store: SandboxStore,
    items: Sequence[UpdateIn],
    updates: RecordUpdates[Record, UpdateIn],
) -> Response:
    """`PATCH /{key}`: each item names its record by `id`; an unknown one fails the batch."""

    def check(item: UpdateIn, rid: str) -> tuple[list[FieldError], _Update[Record] | None]:
        record = updates.find(store, item.id) if item.id is not None else None
        if record is None:
            return [FieldError(rid, "id", "NotFound", f"{updates.name} not found")], None
        errors, changes = updates.changes(store, record, item, rid)
        return errors, _Update(record, changes)

    def write(index: int, item: UpdateIn, update: _Update[Record] | None) -> dict[str, Any]:
        assert update is not None, "written only when every item was found"
        updated = updates.apply(store, update.record, update.changes)
        row = added_row(request, index, item, updated.id, updates.path(updated.id))
        return {**row, "updated_at": updated.updated_at}

    return write_batch(request, store, updates.key, items, check, write)


def update_one(
    request: Request,
    store: SandboxStore,
    record_id: int,
    item: UpdateIn,
    updates: RecordUpdates[Record, UpdateIn],
) -> Response:
    """`PATCH /{key}/{id}`: 404 for an unknown record, Kommo's 400 for a bad change."""
    check_batch(store, [item])
    record = updates.find(store, record_id)
    if record is None:
        raise not_found(updates.name)
    errors, changes = updates.changes(store, record, item, "0")
    if errors:
        return validation_failed(errors)
    updated = updates.apply(store, record, changes)
    return HalJSONResponse(
        {
            "id": updated.id,
            "updated_at": updated.updated_at,
            "_links": self_link(request, updates.path(record_id)),
        }
    )


def given_values(item: KommoItem, names: Iterable[str]) -> Changes:
    """The fields of `names` that the request set to a value (a null changes nothing)."""
    return {
        name: getattr(item, name)
        for name in names
        if name in item.model_fields_set and getattr(item, name) is not None
    }
