"""What happens around a deal: notes, tasks, calls and the account's event feed.

Endpoints (Kommo API v4): `GET/POST /api/v4/{leads|contacts|companies}/notes`,
`GET /api/v4/{entity}/{id}/notes`, `GET/POST/PATCH /api/v4/tasks`, `GET/PATCH
/api/v4/tasks/{id}`, `POST /api/v4/calls`, `GET /api/v4/events[/{id}]`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

from agent_platform.crm.kommo.api.transport import (
    MAX_PAGE_SIZE,
    KommoTransport,
    embedded_rows,
    expecting_kommo_shape,
    list_params,
    rows_in,
)
from agent_platform.crm.kommo.models import (
    AddedCall,
    AddedRecord,
    CallError,
    CallInput,
    CallsAdded,
    EntityType,
    Event,
    EventFilter,
    Note,
    NoteInput,
    OrderDirection,
    Task,
    TaskFilter,
    TaskInput,
    TaskUpdate,
)


class NotesApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        entity_type: EntityType,
        entity_id: int | None = None,
        *,
        note_types: Sequence[str] = (),
        order: tuple[str, OrderDirection] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Note]:
        """The notes of one entity, or of every entity of the type when `entity_id` is None."""
        path = (
            f"/api/v4/{entity_type}/notes"
            if entity_id is None
            else f"/api/v4/{entity_type}/{entity_id}/notes"
        )
        filter = {"note_type": list(note_types)} if note_types else None
        params = list_params(filter=filter, order=order)
        async for row in self._t.pages(path, "notes", params=params, page_size=page_size):
            yield Note.model_validate(row)

    async def latest(
        self, entity_type: EntityType, entity_id: int, *, limit: int = 50
    ) -> list[Note]:
        """The entity's newest notes first, one request (no paging)."""
        response = await self._t.request(
            "GET",
            f"/api/v4/{entity_type}/{entity_id}/notes",
            params=[("limit", limit), ("order[id]", "desc")],
        )
        return [Note.model_validate(row) for row in embedded_rows(response, "notes")]

    async def add(self, entity_type: EntityType, notes: Sequence[NoteInput]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "POST", f"/api/v4/{entity_type}/notes", [n.to_kommo() for n in notes], rows_in("notes")
        )
        return [AddedRecord.model_validate(row) for row in rows]


class TasksApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        *,
        filter: TaskFilter | None = None,
        order: tuple[str, OrderDirection] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Task]:
        """Tasks matching; `order` fields are created_at, complete_till and id."""
        params = list_params(filter=filter.to_kommo() if filter else None, order=order)
        async for row in self._t.pages(
            "/api/v4/tasks", "tasks", params=params, page_size=page_size
        ):
            yield Task.model_validate(row)

    async def get(self, task_id: int) -> Task:
        body = await self._t.get_object(
            f"/api/v4/tasks/{task_id}", missing=f"task {task_id} not found"
        )
        return Task.model_validate(body)

    async def add(self, tasks: Sequence[TaskInput]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "POST", "/api/v4/tasks", [task.to_kommo() for task in tasks], rows_in("tasks")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def update(self, changes: Sequence[TaskUpdate]) -> list[AddedRecord]:
        rows = await self._t.write_batched(
            "PATCH", "/api/v4/tasks", [change.to_kommo() for change in changes], rows_in("tasks")
        )
        return [AddedRecord.model_validate(row) for row in rows]

    async def complete(self, task_id: int, result_text: str) -> AddedRecord:
        """Mark a task done with the result a manager would write."""
        body = TaskUpdate(id=task_id, is_completed=True, result_text=result_text).to_kommo()
        body.pop("id")
        response = await self._t.request("PATCH", f"/api/v4/tasks/{task_id}", json=body)
        with expecting_kommo_shape(response):
            return AddedRecord.model_validate(response.json())


CallRow = tuple[Literal["call", "error"], dict[str, Any]]


def _call_rows(body: Any) -> list[CallRow]:
    calls: list[CallRow] = [("call", row) for row in body["_embedded"]["calls"]]
    return calls + [("error", row) for row in body.get("errors") or []]


class CallsApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def add(self, calls: Sequence[CallInput]) -> CallsAdded:
        """Log calls. A call whose phone matches no contact or company comes back in `errors`
        (Kommo answers 200 for the batch and names the items it could not place)."""
        rows = await self._t.write_batched(
            "POST", "/api/v4/calls", [call.to_kommo() for call in calls], _call_rows
        )
        return CallsAdded(
            calls=[AddedCall.model_validate(row) for kind, row in rows if kind == "call"],
            errors=[CallError.model_validate(row) for kind, row in rows if kind == "error"],
        )


class EventsApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        *,
        filter: EventFilter | None = None,
        with_: Sequence[str] = (),
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Event]:
        """The account's events, newest first (`lead_status_changed`, `incoming_call`…)."""
        params = list_params(filter=filter.to_kommo() if filter else None, with_=with_)
        async for row in self._t.pages(
            "/api/v4/events", "events", params=params, page_size=page_size
        ):
            yield Event.model_validate(row)

    async def get(self, event_id: str) -> Event:
        body = await self._t.get_object(
            f"/api/v4/events/{event_id}", missing=f"event {event_id} not found"
        )
        return Event.model_validate(body)
