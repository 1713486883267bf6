"""Sandbox routes for notes, tasks, calls and the event feed, as Kommo API v4 answers them.

Notes: `GET/POST /api/v4/{leads|contacts|companies}/notes` (filter[entity_id], filter[note_type],
filter[id]) and `GET /api/v4/{entity}/{id}/notes`; text notes only are written (`common`,
`service_message`), calls arrive as `call_in`/`call_out` notes through `POST /api/v4/calls`.
Tasks: `GET/POST/PATCH /api/v4/tasks`, `GET/PATCH /api/v4/tasks/{id}` (filter[id],
filter[is_completed], filter[task_type], filter[entity_type], filter[entity_id],
filter[responsible_user_id], filter[updated_at]). Events: `GET /api/v4/events[/{id}]`
(filter[type], filter[entity], filter[entity_id], filter[created_by], filter[created_at]),
newest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from agent_platform.crm.sandbox.api_common import (
    NOT_A_CHOICE,
    Batch,
    FieldError,
    HalJSONResponse,
    KommoItem,
    Limit,
    Page,
    Store,
    added_row,
    bad_query,
    bracket_query,
    check_batch,
    filters_of,
    many,
    many_ints,
    no_content,
    ordering,
    page_response,
    require_token,
    responsible_errors,
    self_link,
    time_range,
    validation_failed,
)
from agent_platform.crm.sandbox.api_writes import (
    Changes,
    KommoUpdateItem,
    RecordUpdates,
    given_values,
    update_batch,
    update_one,
    write_batch,
)
from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    EVENT_ENTITY,
    TASK_TYPE_IDS,
    USER_ID,
    Company,
    Contact,
    EntityType,
    Event,
    Note,
    SandboxStore,
    Task,
)

router = APIRouter(prefix="/api/v4", dependencies=[Depends(require_token)])


# --- notes -----------------------------------------------------------------------------------


class NoteParams(BaseModel):
    model_config = ConfigDict(strict=True)

    text: str = Field(min_length=1)
    service: str | None = Field(default=None, min_length=1)  # service_message only


class NoteIn(KommoItem):
    entity_id: int
    # The platform writes only text notes; other Kommo note types are refused like unknown ones.
    note_type: Literal["common", "service_message"]
    params: NoteParams
    created_by: int | None = None


@router.post("/{entity_type}/notes")
async def add_notes(
    request: Request, store: Store, entity_type: EntityType, items: Batch[NoteIn]
) -> Response:
    def check(item: NoteIn, rid: str) -> tuple[list[FieldError], None]:
        errors = []
        if not store.exists(entity_type, item.entity_id):
            errors.append(
                FieldError(rid, "entity_id", "NotFound", f"No {entity_type} with this id")
            )
        if item.note_type == "service_message" and item.params.service is None:
            errors.append(
                FieldError(
                    rid, "params.service", "NotBlank", "A service message names its service."
                )
            )
        return errors, None

    def write(index: int, item: NoteIn, _: None) -> dict[str, Any]:
        params = item.params.model_dump(exclude_none=True)
        note = store.add_note(
            entity_type,
            item.entity_id,
            item.note_type,
            params,
            created_by=item.created_by or USER_ID,
        )
        row = added_row(request, index, item, note.id, _note_path(note))
        return {**row, "entity_id": note.entity_id}

    return write_batch(request, store, "notes", items, check, write)


@router.get("/{entity_type}/notes")
async def list_all_notes(
    request: Request, store: Store, entity_type: EntityType, page: Page = 1, limit: Limit = 50
) -> Response:
    query = bracket_query(request)
    filters = filters_of(query)
    entity_ids = set(many_ints(filters.get("entity_id"), "filter.entity_id"))
    notes = [
        note for note in store.notes(entity_type) if not entity_ids or note.entity_id in entity_ids
    ]
    return _notes_page(request, query, notes, page=page, limit=limit)


@router.get("/{entity_type}/{entity_id:int}/notes")
async def list_notes(
    request: Request,
    store: Store,
    entity_type: EntityType,
    entity_id: int,
    page: Page = 1,
    limit: Limit = 50,
) -> Response:
    return _notes_page(
        request, bracket_query(request), store.notes(entity_type, entity_id), page=page, limit=limit
    )


def _notes_page(
    request: Request, query: dict[str, Any], notes: list[Note], *, page: int, limit: int
) -> Response:
    filters = filters_of(query)
    types = set(many(filters.get("note_type")))
    ids = set(many_ints(filters.get("id"), "filter.id"))
    notes = [n for n in notes if (not types or n.note_type in types) and (not ids or n.id in ids)]
    field, descending = ordering(query, ("id", "updated_at"))
    notes.sort(
        key=lambda note: (note.created_at if field == "updated_at" else note.id, note.id),
        reverse=descending,
    )
    return page_response(
        request, "notes", [note_json(request, note) for note in notes], page=page, limit=limit
    )


def note_json(request: Request, note: Note) -> dict[str, Any]:
    return {
        "id": note.id,
        "entity_id": note.entity_id,
        "created_by": note.created_by,
        "updated_by": note.created_by,
        "created_at": note.created_at,
        "updated_at": note.created_at,
        "responsible_user_id": note.created_by,
        "group_id": 0,
        "note_type": note.note_type,
        "params": note.params,
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, _note_path(note)),
    }


def _note_path(note: Note) -> str:
    return f"/api/v4/{note.entity_type}/{note.entity_id}/notes/{note.id}"


# --- tasks -----------------------------------------------------------------------------------


class TaskResultIn(BaseModel):
    model_config = ConfigDict(strict=True)

    text: str = ""


class TaskIn(KommoItem):
    text: str = Field(min_length=1)
    complete_till: int
    entity_id: int | None = None
    entity_type: EntityType | None = None
    responsible_user_id: int | None = None
    task_type_id: int = 1
    duration: int = Field(default=0, ge=0)
    is_completed: bool = False
    result: TaskResultIn | None = None
    created_by: int | None = None


class TaskUpdateIn(KommoUpdateItem):
    text: str | None = Field(default=None, min_length=1)
    complete_till: int | None = None
    entity_id: int | None = None
    entity_type: EntityType | None = None
    responsible_user_id: int | None = None
    task_type_id: int | None = None
    duration: int | None = Field(default=None, ge=0)
    is_completed: bool | None = None
    result: TaskResultIn | None = None


def _task_errors(
    store: SandboxStore,
    rid: str,
    *,
    entity_type: EntityType | None,
    entity_id: int | None,
    task_type_id: int | None,
    responsible_user_id: int | None,
) -> list[FieldError]:
    errors = responsible_errors(store, responsible_user_id, rid)
    if entity_id is not None and entity_type is None:
        errors.append(FieldError(rid, "entity_type", "NotBlank", "A task's entity needs its type."))
    elif entity_type is not None and entity_id is None:
        errors.append(FieldError(rid, "entity_id", "NotBlank", "A task's entity needs its id."))
    elif (
        entity_type is not None
        and entity_id is not None
        and not store.exists(entity_type, entity_id)
    ):
        errors.append(FieldError(rid, "entity_id", "NotFound", f"No {entity_type} with this id"))
    if task_type_id is not None and task_type_id not in TASK_TYPE_IDS:
        errors.append(FieldError(rid, "task_type_id", "NotSupportedChoice", NOT_A_CHOICE))
    return errors


@router.post("/tasks")
async def add_tasks(request: Request, store: Store, items: Batch[TaskIn]) -> Response:
    def check(item: TaskIn, rid: str) -> tuple[list[FieldError], None]:
        errors = _task_errors(
            store,
            rid,
            entity_type=item.entity_type,
            entity_id=item.entity_id,
            task_type_id=item.task_type_id,
            responsible_user_id=item.responsible_user_id,
        )
        return errors, None

    def write(index: int, item: TaskIn, _: None) -> dict[str, Any]:
        task = store.add_task(
            text=item.text,
            complete_till=item.complete_till,
            task_type_id=item.task_type_id,
            responsible_user_id=item.responsible_user_id or USER_ID,
            entity_type=item.entity_type,
            entity_id=item.entity_id,
            duration=item.duration,
            is_completed=item.is_completed,
            result_text=item.result.text if item.result else None,
            created_by=item.created_by or USER_ID,
        )
        return added_row(request, index, item, task.id, f"/api/v4/tasks/{task.id}")

    return write_batch(request, store, "tasks", items, check, write)


@router.get("/tasks")
async def list_tasks(request: Request, store: Store, page: Page = 1, limit: Limit = 50) -> Response:
    query = bracket_query(request)
    filters = filters_of(query)
    ids = set(many_ints(filters.get("id"), "filter.id"))
    completed = _flag(filters.get("is_completed"), "filter.is_completed")
    task_types = set(many_ints(filters.get("task_type"), "filter.task_type"))
    entity_type = filters.get("entity_type")
    entity_ids = set(many_ints(filters.get("entity_id"), "filter.entity_id"))
    if entity_ids and not entity_type:
        raise bad_query(
            "filter.entity_id", "NotBlank", "filter[entity_id] needs filter[entity_type]."
        )
    responsible = set(many_ints(filters.get("responsible_user_id"), "filter.responsible_user_id"))
    updated = time_range(filters.get("updated_at"), "filter.updated_at")
    tasks = [
        task
        for task in store.tasks()
        if (not ids or task.id in ids)
        and (completed is None or task.is_completed == completed)
        and (not task_types or task.task_type_id in task_types)
        and (not entity_type or task.entity_type == entity_type)
        and (not entity_ids or task.entity_id in entity_ids)
        and (not responsible or task.responsible_user_id in responsible)
        and (updated is None or updated.holds(task.updated_at))
    ]
    field, descending = ordering(query, ("created_at", "complete_till", "id"))
    tasks.sort(key=lambda task: (getattr(task, field), task.id), reverse=descending)
    return page_response(
        request, "tasks", [task_json(request, task) for task in tasks], page=page, limit=limit
    )


def _flag(node: Any, path: str) -> bool | None:
    if node is None:
        return None
    value = str(node).lower()
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise bad_query(path, "InvalidType", "This value should be 1 or 0.")


@router.get("/tasks/{task_id:int}")
async def get_task(request: Request, store: Store, task_id: int) -> Response:
    task = store.get_task(task_id)
    return no_content() if task is None else HalJSONResponse(task_json(request, task))


@router.patch("/tasks")
async def update_tasks(request: Request, store: Store, items: Batch[TaskUpdateIn]) -> Response:
    return update_batch(request, store, items, TASK_UPDATES)


@router.patch("/tasks/{task_id:int}")
async def update_task(
    request: Request, store: Store, task_id: int, item: Annotated[TaskUpdateIn, Body()]
) -> Response:
    return update_one(request, store, task_id, item, TASK_UPDATES)


_TASK_PLAIN_FIELDS = (
    "text",
    "complete_till",
    "entity_id",
    "entity_type",
    "responsible_user_id",
    "task_type_id",
    "duration",
    "is_completed",
)


def _task_changes(
    store: SandboxStore, task: Task, item: TaskUpdateIn, rid: str
) -> tuple[list[FieldError], Changes]:
    given = item.model_fields_set
    # The entity is checked as it will be: what the PATCH gives, completed from the task.
    relinked = "entity_id" in given or "entity_type" in given
    errors = _task_errors(
        store,
        rid,
        entity_type=(item.entity_type if "entity_type" in given else task.entity_type)
        if relinked
        else None,
        entity_id=(item.entity_id if "entity_id" in given else task.entity_id)
        if relinked
        else None,
        task_type_id=item.task_type_id,
        responsible_user_id=item.responsible_user_id,
    )
    changes = given_values(item, _TASK_PLAIN_FIELDS)
    if item.result is not None:
        changes["result_text"] = item.result.text or None
    return errors, changes


def _apply_task_changes(store: SandboxStore, task: Task, changes: Changes) -> Task:
    return store.update_task(task.id, **changes)


TASK_UPDATES: RecordUpdates[Task, TaskUpdateIn] = RecordUpdates(
    "tasks", "Task", SandboxStore.get_task, _task_changes, _apply_task_changes
)


def task_json(request: Request, task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "created_by": task.created_by,
        "updated_by": task.updated_by,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "responsible_user_id": task.responsible_user_id,
        "group_id": 0,
        "entity_id": task.entity_id,
        "entity_type": task.entity_type,
        "duration": task.duration,
        "is_completed": task.is_completed,
        "task_type_id": task.task_type_id,
        "text": task.text,
        # Kommo sends an empty array when a task has no result (PHP's empty array).
        "result": {"text": task.result_text} if task.result_text else [],
        "complete_till": task.complete_till,
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/tasks/{task.id}"),
    }


# --- calls -----------------------------------------------------------------------------------


class CallIn(KommoItem):
    direction: Literal["inbound", "outbound"]
    duration: int = Field(ge=0)
    source: str = Field(min_length=1)
    phone: str = Field(min_length=1)
    uniq: str | None = None
    link: str | None = None
    call_status: int | None = Field(default=None, ge=1, le=7)
    call_result: str | None = None
    responsible_user_id: int | None = None
    created_by: int | None = None
    updated_by: int | None = None
    created_at: int | None = None
    updated_at: int | None = None


@router.post("/calls")
async def add_calls(request: Request, store: Store, items: Batch[CallIn]) -> Response:
    """Calls land on the contact or company with the phone, or on its one open lead.

    A call whose phone nobody has is not logged: it is named in `errors` (with its
    request_id) while the others are added, and the answer is still 200.
    """
    check_batch(store, items)
    errors = [
        error
        for index, item in enumerate(items)
        for error in responsible_errors(store, item.responsible_user_id, item.rid(index))
    ]
    if errors:
        return validation_failed(errors)
    calls, failures = [], []
    for index, item in enumerate(items):
        rid = item.rid(index)
        target = _call_target(store, item.phone)
        if target is None:
            failures.append(
                {
                    "request_id": rid,
                    "status": 404,
                    "title": "Not Found",
                    "detail": "No contact or company has this phone number",
                }
            )
            continue
        entity_type, entity_id = target
        call = store.add_call(
            direction=item.direction,
            duration=item.duration,
            source=item.source,
            phone=item.phone,
            entity_type=entity_type,
            entity_id=entity_id,
            uniq=item.uniq,
            link=item.link,
            call_status=item.call_status,
            call_result=item.call_result,
            responsible_user_id=item.responsible_user_id or USER_ID,
            created_by=item.created_by or 0,
        )
        calls.append(
            {
                "id": call.id,
                "entity_id": entity_id,
                "entity_type": EVENT_ENTITY[entity_type],
                "account_id": ACCOUNT_ID,
                "request_id": rid,
                "_embedded": {
                    "entity": {
                        "id": entity_id,
                        "_links": self_link(request, f"/api/v4/{entity_type}/{entity_id}"),
                    }
                },
            }
        )
    return HalJSONResponse(
        {"_total_items": len(calls), "errors": failures, "_embedded": {"calls": calls}}
    )


def _call_target(store: SandboxStore, phone: str) -> tuple[EntityType, int] | None:
    """Kommo's rule: the contact's (or company's) one open lead, else the contact itself."""
    owner = store.find_by_phone(phone)
    if owner is None:
        return None
    if isinstance(owner, Contact):
        open_leads = [lead for lead in store.leads_of_contact(owner.id) if lead.is_open]
        return ("leads", open_leads[0].id) if len(open_leads) == 1 else ("contacts", owner.id)
    assert isinstance(owner, Company)
    open_leads = [lead for lead in store.leads() if lead.company_id == owner.id and lead.is_open]
    return ("leads", open_leads[0].id) if len(open_leads) == 1 else ("companies", owner.id)


# --- events ----------------------------------------------------------------------------------

_PLURAL = {singular: plural for plural, singular in EVENT_ENTITY.items()}


@router.get("/events")
async def list_events(
    request: Request, store: Store, page: Page = 1, limit: Limit = 50
) -> Response:
    query = bracket_query(request)
    filters = filters_of(query)
    ids = set(many(filters.get("id")))
    types = set(many(filters.get("type")))
    entities = set(many(filters.get("entity")))
    entity_ids = set(many_ints(filters.get("entity_id"), "filter.entity_id"))
    if entity_ids and len(entities) != 1:
        raise bad_query(
            "filter.entity_id", "NotBlank", "filter[entity_id] needs exactly one filter[entity]."
        )
    created_by = set(many_ints(filters.get("created_by"), "filter.created_by"))
    created = time_range(filters.get("created_at"), "filter.created_at")
    events = [
        event
        for event in reversed(store.events())
        if (not ids or event.id in ids)
        and (not types or event.type in types)
        and (not entities or event.entity_type in entities)
        and (not entity_ids or event.entity_id in entity_ids)
        and (not created_by or event.created_by in created_by)
        and (created is None or created.holds(event.created_at))
    ]
    return page_response(
        request, "events", [event_json(request, e) for e in events], page=page, limit=limit
    )


@router.get("/events/{event_id}")
async def get_event(request: Request, store: Store, event_id: str) -> Response:
    event = next((e for e in store.events() if e.id == event_id), None)
    return no_content() if event is None else HalJSONResponse(event_json(request, event))


def event_json(request: Request, event: Event) -> dict[str, Any]:
    entity_path = f"/api/v4/{_PLURAL.get(event.entity_type, event.entity_type)}/{event.entity_id}"
    return {
        "id": event.id,
        "type": event.type,
        "entity_id": event.entity_id,
        "entity_type": event.entity_type,
        "created_by": event.created_by,
        "created_at": event.created_at,
        "value_after": list(event.value_after),
        "value_before": list(event.value_before),
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/events/{event.id}"),
        "_embedded": {"entity": {"id": event.entity_id, "_links": self_link(request, entity_path)}},
    }
