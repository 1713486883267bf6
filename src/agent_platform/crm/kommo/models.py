"""Typed models of Kommo API v4: what the client reads (responses) and what it writes (inputs).

Shapes follow Kommo's developer documentation (developers.kommo.com/reference, and the older
kommo.com/developers/content/api_v4 pages): ids are ints (events have string ids), times are
unix seconds, HAL `_embedded` holds related records. Reading models ignore fields they do not
name, so a new field in Kommo's answer never breaks the platform; `_embedded` is flattened into
plain attributes (`lead.contacts`, `lead.tags`, `pipeline.statuses`).

Write models render the exact body Kommo expects with `to_kommo()`: only the fields that were
set, `_embedded` built from `tags`/`contact_ids`/`company_id`, custom field values in Kommo's
`{"field_id" | "field_code", "values": [{"value" | "enum_id" | "enum_code"}]}` shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

EntityType = Literal["leads", "contacts", "companies"]
# Tasks link to these; notes attach to these.
NoteType = Literal["common", "service_message"]
CallDirection = Literal["inbound", "outbound"]

# Every pipeline ends with these two fixed stages.
WON_STATUS_ID = 142
LOST_STATUS_ID = 143
# The two task types every account has.
FOLLOW_UP_TASK_TYPE_ID = 1
MEETING_TASK_TYPE_ID = 2

FieldScalar = str | int | float | bool


class CallStatus(IntEnum):
    """Kommo's `call_status` codes of a logged call."""

    LEFT_MESSAGE = 1
    CALL_BACK_LATER = 2
    NOT_AVAILABLE = 3
    CONVERSATION = 4
    INVALID_NUMBER = 5
    NO_CONNECTION = 6
    LINE_BUSY = 7


# --- reading -------------------------------------------------------------------------------


class KommoModel(BaseModel):
    """A record as Kommo returns it; `_embedded` lists are lifted to attributes of the same name."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _lift_embedded(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("_embedded"), dict):
            embedded = data["_embedded"]
            data = {**{k: v for k, v in data.items() if k != "_embedded"}, **embedded}
        return data


class FieldValue(BaseModel):
    """One value of a custom field: a scalar, or an enum choice (with its text in `value`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    value: FieldScalar | None = None
    enum_id: int | None = None
    enum_code: str | None = None


class CustomFieldValues(KommoModel):
    """A custom field's values on a record, as read."""

    field_id: int
    field_name: str | None = None
    field_code: str | None = None
    field_type: str | None = None
    values: list[FieldValue] = []


class EntityLink(KommoModel):
    """A related record in `_embedded` (a lead's contacts, a contact's companies…)."""

    id: int
    is_main: bool | None = None


class Tag(KommoModel):
    id: int
    name: str
    color: str | None = None


class _CrmRecord(KommoModel):
    """What leads, contacts and companies all carry."""

    id: int
    name: str
    responsible_user_id: int | None = None
    group_id: int | None = None
    created_by: int | None = None
    updated_by: int | None = None
    created_at: int
    updated_at: int
    closest_task_at: int | None = None
    is_deleted: bool = False
    account_id: int | None = None
    custom_fields_values: list[CustomFieldValues] | None = None
    tags: list[Tag] = []

    def field(self, field: int | str) -> CustomFieldValues | None:
        """The values of one custom field, by its id or its code (`PHONE`, `EMAIL`…)."""
        for values in self.custom_fields_values or []:
            if field in (values.field_id, values.field_code):
                return values
        return None

    def field_values(self, field: int | str) -> list[FieldScalar]:
        values = self.field(field)
        return [v.value for v in values.values if v.value is not None] if values else []


class Lead(_CrmRecord):
    price: int | None = None
    status_id: int
    pipeline_id: int
    loss_reason_id: int | None = None
    closed_at: int | None = None
    contacts: list[EntityLink] = []  # only with `with=contacts`
    companies: list[EntityLink] = []

    @property
    def is_won(self) -> bool:
        return self.status_id == WON_STATUS_ID

    @property
    def is_lost(self) -> bool:
        return self.status_id == LOST_STATUS_ID


class Contact(_CrmRecord):
    first_name: str | None = None
    last_name: str | None = None
    companies: list[EntityLink] = []
    leads: list[EntityLink] = []  # only with `with=leads`

    @property
    def phones(self) -> list[str]:
        return [str(value) for value in self.field_values("PHONE")]

    @property
    def emails(self) -> list[str]:
        return [str(value) for value in self.field_values("EMAIL")]


class Company(_CrmRecord):
    contacts: list[EntityLink] = []
    leads: list[EntityLink] = []


class Note(KommoModel):
    id: int
    entity_id: int
    note_type: str
    params: dict[str, Any] = {}
    created_by: int | None = None
    updated_by: int | None = None
    created_at: int
    updated_at: int | None = None
    responsible_user_id: int | None = None
    account_id: int | None = None

    @property
    def text(self) -> str | None:
        """Text notes (common, service messages) carry `params.text`; calls and the like do not."""
        text = self.params.get("text")
        return text if isinstance(text, str) else None


class Task(KommoModel):
    id: int
    text: str
    complete_till: int
    task_type_id: int
    is_completed: bool
    entity_id: int | None = None
    entity_type: str | None = None
    responsible_user_id: int | None = None
    group_id: int | None = None
    duration: int | None = None
    result: dict[str, Any] | list[Any] | None = None  # Kommo sends [] or {} when there is none
    created_by: int | None = None
    updated_by: int | None = None
    created_at: int
    updated_at: int
    account_id: int | None = None

    @property
    def result_text(self) -> str | None:
        text = self.result.get("text") if isinstance(self.result, dict) else None
        return text if isinstance(text, str) else None


class Status(KommoModel):
    """A pipeline stage. `type` 1 is the incoming-leads stage, 0 every other one."""

    id: int
    name: str
    sort: int
    is_editable: bool
    pipeline_id: int
    color: str
    type: int
    account_id: int | None = None


class Pipeline(KommoModel):
    id: int
    name: str
    sort: int
    is_main: bool
    is_unsorted_on: bool
    is_archive: bool
    account_id: int | None = None
    statuses: list[Status] = []


class User(KommoModel):
    id: int
    name: str
    email: str | None = None
    lang: str | None = None
    rights: dict[str, Any] = {}

    @property
    def is_admin(self) -> bool:
        return bool(self.rights.get("is_admin"))

    @property
    def is_active(self) -> bool:
        return bool(self.rights.get("is_active", True))


class FieldEnum(KommoModel):
    id: int
    value: str
    sort: int | None = None


class CustomField(KommoModel):
    """A custom field's definition: its id, code, type and, for lists, its choices."""

    id: int
    name: str
    type: str
    code: str | None = None
    sort: int | None = None
    entity_type: str | None = None
    is_predefined: bool | None = None
    is_deletable: bool | None = None
    is_api_only: bool | None = None
    enums: list[FieldEnum] | None = None

    def enum_id(self, value: str) -> int | None:
        """The id of the choice whose text is `value` (case-insensitive), if there is one."""
        wanted = value.casefold()
        return next((e.id for e in self.enums or [] if e.value.casefold() == wanted), None)


class Event(KommoModel):
    id: str
    type: str
    entity_id: int
    entity_type: str  # singular: "lead", "contact", "company", "task"
    created_by: int
    created_at: int
    value_after: list[dict[str, Any]] = []
    value_before: list[dict[str, Any]] = []
    account_id: int | None = None


class Webhook(KommoModel):
    id: int
    destination: str
    settings: list[str]
    sort: int | None = None
    disabled: bool = False
    created_by: int | None = None
    created_at: int | None = None
    updated_at: int | None = None
    account_id: int | None = None


class Account(KommoModel):
    id: int
    name: str
    subdomain: str
    current_user_id: int
    country: str | None = None
    currency: str | None = None
    created_at: int | None = None


class AddedRecord(KommoModel):
    """Kommo's answer for one item of a batch write: the record's id and the item's request_id."""

    id: int
    request_id: str | None = None
    updated_at: int | None = None


class ComplexLeadResult(KommoModel):
    """One lead added with `leads/complex`: its id and those of the contact and company made."""

    id: int
    contact_id: int | None = None
    company_id: int | None = None
    request_id: list[str] = []
    merged: bool = False


class AddedCall(KommoModel):
    """A logged call: Kommo attached it to the entity it found by the phone number."""

    id: int
    entity_id: int
    entity_type: str
    request_id: str | None = None


class CallError(KommoModel):
    """A call Kommo did not log (typically: no contact or company has that phone number)."""

    request_id: str | None = None
    status: int | None = None
    title: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class CallsAdded:
    calls: list[AddedCall]
    errors: list[CallError]


# --- writing -------------------------------------------------------------------------------


class CustomFieldInput(BaseModel):
    """Values to write into one custom field, named by `field_id` or by `field_code`.

    `CustomFieldInput.of(field, *values)` writes scalars (text, number, checkbox, date as unix
    seconds; `enum_code` picks a multitext kind such as "WORK" for PHONE/EMAIL);
    `CustomFieldInput.choice(field, *enum_ids)` picks list/multiselect/radiobutton choices.
    An empty `values` list clears the field.
    """

    model_config = ConfigDict(frozen=True)

    field_id: int | None = None
    field_code: str | None = None
    values: list[FieldValue]

    @model_validator(mode="after")
    def _named_once(self) -> Self:
        if (self.field_id is None) == (self.field_code is None):
            raise ValueError("name the field by exactly one of field_id and field_code")
        return self

    @classmethod
    def of(cls, field: int | str, *values: FieldScalar, enum_code: str | None = None) -> Self:
        items = [FieldValue(value=value, enum_code=enum_code) for value in values]
        return cls._named(field, items)

    @classmethod
    def choice(cls, field: int | str, *enum_ids: int) -> Self:
        return cls._named(field, [FieldValue(enum_id=enum_id) for enum_id in enum_ids])

    @classmethod
    def _named(cls, field: int | str, values: list[FieldValue]) -> Self:
        if isinstance(field, int):
            return cls(field_id=field, values=values)
        return cls(field_code=field, values=values)

    def to_kommo(self) -> dict[str, Any]:
        named: dict[str, Any] = (
            {"field_id": self.field_id}
            if self.field_id is not None
            else {"field_code": self.field_code}
        )
        return {**named, "values": [v.model_dump(exclude_none=True) for v in self.values]}


class TagRef(BaseModel):
    """A tag to put on a record: an existing one by id, or by name (Kommo creates it if new)."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    name: str | None = None

    @model_validator(mode="after")
    def _named_once(self) -> Self:
        if (self.id is None) == (self.name is None):
            raise ValueError("a tag is named by exactly one of id and name")
        return self


class _KommoInput(BaseModel):
    """A write item; `to_kommo()` renders only what was set, plus `_embedded` where it applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Echoed back by Kommo; the client fills it with the item's position when it is not set.
    request_id: str | None = None

    # Fields rendered inside `_embedded` rather than at the top level.
    embedded_fields: ClassVar[frozenset[str]] = frozenset()

    def to_kommo(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        embedded: dict[str, Any] = {}
        # In declaration order, so a request body reads the same every time.
        for name in type(self).model_fields:
            if name not in self.model_fields_set:
                continue
            value = getattr(self, name)
            if name in self.embedded_fields:
                embedded.update(self._embedded(name, value))
            elif name == "custom_fields_values" and value is not None:
                body[name] = [item.to_kommo() for item in value]
            else:
                body[name] = value
        if embedded:
            body["_embedded"] = embedded
        return body

    def _embedded(self, name: str, value: Any) -> dict[str, Any]:
        if name == "tags":
            # `None` detaches every tag, as Kommo documents for `_embedded[tags]`.
            return {
                "tags": None if value is None else [t.model_dump(exclude_none=True) for t in value]
            }
        if name == "contact_ids":
            return {"contacts": [{"id": contact_id} for contact_id in value or []]}
        if name == "company_id":
            return {"companies": [] if value is None else [{"id": value}]}
        raise AssertionError(f"no _embedded rendering for {name}")


class LeadInput(_KommoInput):
    """A lead to add. Without `status_id`, Kommo uses the main pipeline's first stage."""

    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags", "contact_ids", "company_id"})

    name: str | None = None
    price: int | None = Field(default=None, ge=0)
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    loss_reason_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None
    contact_ids: list[int] | None = None
    company_id: int | None = None


class LeadUpdate(_KommoInput):
    """Changes to a lead; fields left unset stay as they are. `tags` replaces all its tags."""

    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags"})

    id: int
    name: str | None = None
    price: int | None = Field(default=None, ge=0)
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    loss_reason_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None


class ContactInput(_KommoInput):
    """A contact to add; phones and e-mails go in the PHONE and EMAIL custom fields."""

    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags", "company_id"})

    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None
    company_id: int | None = None

    @classmethod
    def person(
        cls,
        first_name: str,
        last_name: str = "",
        *,
        phone: str | None = None,
        email: str | None = None,
        **fields: Any,
    ) -> Self:
        """A contact with a work phone and a work e-mail, the common case."""
        values = [
            CustomFieldInput.of(code, value, enum_code="WORK")
            for code, value in (("PHONE", phone), ("EMAIL", email))
            if value
        ]
        if values:
            fields["custom_fields_values"] = [*fields.get("custom_fields_values", []), *values]
        return cls(first_name=first_name, last_name=last_name, **fields)


class ContactUpdate(_KommoInput):
    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags"})

    id: int
    name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None


class CompanyInput(_KommoInput):
    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags"})

    name: str
    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None


class ComplexLeadInput(_KommoInput):
    """A lead added together with a new contact and/or a new company (`POST leads/complex`)."""

    embedded_fields: ClassVar[frozenset[str]] = frozenset({"tags", "contact", "company"})

    name: str | None = None
    price: int | None = Field(default=None, ge=0)
    pipeline_id: int | None = None
    status_id: int | None = None
    responsible_user_id: int | None = None
    custom_fields_values: list[CustomFieldInput] | None = None
    tags: list[TagRef] | None = None
    contact: ContactInput | None = None
    company: CompanyInput | None = None

    def _embedded(self, name: str, value: Any) -> dict[str, Any]:
        if name == "contact":
            return {"contacts": [] if value is None else [_without_request_id(value)]}
        if name == "company":
            return {"companies": [] if value is None else [_without_request_id(value)]}
        return super()._embedded(name, value)


def _without_request_id(item: _KommoInput) -> dict[str, Any]:
    body = item.to_kommo()
    body.pop("request_id", None)
    return body


class NoteInput(_KommoInput):
    """A text note: `common` (a manager's note) or `service_message` (signed by a service)."""

    entity_id: int
    note_type: NoteType
    params: dict[str, str]

    @classmethod
    def common(cls, entity_id: int, text: str, *, request_id: str | None = None) -> Self:
        return cls(
            entity_id=entity_id, note_type="common", params={"text": text}, request_id=request_id
        )

    @classmethod
    def service_message(
        cls, entity_id: int, service: str, text: str, *, request_id: str | None = None
    ) -> Self:
        return cls(
            entity_id=entity_id,
            note_type="service_message",
            params={"service": service, "text": text},
            request_id=request_id,
        )


class TaskInput(_KommoInput):
    """A task for a user, due at `complete_till` (unix seconds), optionally on a lead/contact."""

    text: str = Field(min_length=1)
    complete_till: int
    entity_id: int | None = None
    entity_type: EntityType | None = None
    responsible_user_id: int | None = None
    task_type_id: int = FOLLOW_UP_TASK_TYPE_ID
    duration: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _linked_fully(self) -> Self:
        if (self.entity_id is None) != (self.entity_type is None):
            raise ValueError("a task links to an entity by both entity_id and entity_type")
        return self

    def to_kommo(self) -> dict[str, Any]:
        # task_type_id has a default Kommo does not know about: always send it.
        return {**super().to_kommo(), "task_type_id": self.task_type_id}


class TaskUpdate(_KommoInput):
    """Changes to a task. Completing one is `is_completed=True` with the result's text."""

    id: int
    text: str | None = None
    complete_till: int | None = None
    responsible_user_id: int | None = None
    task_type_id: int | None = None
    is_completed: bool | None = None
    result_text: str | None = None

    def to_kommo(self) -> dict[str, Any]:
        body = super().to_kommo()
        if "result_text" in body:
            body["result"] = {"text": body.pop("result_text")}
        return body


class CallInput(_KommoInput):
    """A call to log. Kommo finds the contact or company by `phone` (last 10 digits) and puts
    the call on its one open lead, or on the contact/company itself."""

    direction: CallDirection
    duration: int = Field(ge=0)
    source: str = Field(min_length=1)
    phone: str = Field(min_length=1)
    uniq: str | None = None
    link: str | None = None
    call_status: CallStatus | None = None
    call_result: str | None = None
    responsible_user_id: int | None = None
    created_by: int | None = None
    created_at: int | None = None

    def to_kommo(self) -> dict[str, Any]:
        body = super().to_kommo()
        if "call_status" in body and body["call_status"] is not None:
            body["call_status"] = int(body["call_status"])
        return body


class TagInput(_KommoInput):
    name: str = Field(min_length=1)
    color: str | None = None


# --- list filters ----------------------------------------------------------------------------

OrderDirection = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A closed range of unix seconds; either end may be open."""

    start: int | None = None
    end: int | None = None

    def to_kommo(self) -> dict[str, int]:
        bounds = {"from": self.start, "to": self.end}
        return {key: value for key, value in bounds.items() if value is not None}


@dataclass(frozen=True, slots=True)
class _RecordFilter:
    """What every list of records (leads, contacts) is filtered by; empty lists filter nothing."""

    ids: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    responsible_user_ids: list[int] = field(default_factory=list)
    created_at: TimeRange | None = None
    updated_at: TimeRange | None = None

    def to_kommo(self) -> dict[str, Any]:
        return _filter_params(
            {
                "id": self.ids,
                "name": self.names,
                "responsible_user_id": self.responsible_user_ids,
                "created_at": self.created_at,
                "updated_at": self.updated_at,
                **self._own_params(),
            }
        )

    def _own_params(self) -> dict[str, Any]:
        """What one kind of record is filtered by besides."""
        return {}


@dataclass(frozen=True, slots=True)
class ContactFilter(_RecordFilter):
    """Contacts by id, name, responsible user, creation and update time."""


@dataclass(frozen=True, slots=True)
class LeadFilter(_RecordFilter):
    pipeline_ids: list[int] = field(default_factory=list)
    # (pipeline_id, status_id) pairs: Kommo filters stages within their pipelines.
    statuses: list[tuple[int, int]] = field(default_factory=list)
    closed_at: TimeRange | None = None

    def _own_params(self) -> dict[str, Any]:
        return {
            "pipeline_id": self.pipeline_ids,
            "statuses": [{"pipeline_id": p, "status_id": s} for p, s in self.statuses],
            "closed_at": self.closed_at,
        }


@dataclass(frozen=True, slots=True)
class TaskFilter:
    ids: list[int] = field(default_factory=list)
    is_completed: bool | None = None
    task_type_ids: list[int] = field(default_factory=list)
    entity_type: EntityType | None = None
    entity_ids: list[int] = field(default_factory=list)  # needs entity_type, as in Kommo
    responsible_user_ids: list[int] = field(default_factory=list)
    updated_at: TimeRange | None = None

    def to_kommo(self) -> dict[str, Any]:
        if self.entity_ids and self.entity_type is None:
            raise ValueError("filtering tasks by entity_ids needs entity_type")
        return _filter_params(
            {
                "id": self.ids,
                "is_completed": self.is_completed,
                "task_type": self.task_type_ids,
                "entity_type": self.entity_type,
                "entity_id": self.entity_ids,
                "responsible_user_id": self.responsible_user_ids,
                "updated_at": self.updated_at,
            }
        )


@dataclass(frozen=True, slots=True)
class EventFilter:
    types: list[str] = field(default_factory=list)
    # Singular entity names, as events use them: "lead", "contact", "company", "task".
    entities: list[str] = field(default_factory=list)
    entity_ids: list[int] = field(default_factory=list)  # needs exactly one entity
    created_by: list[int] = field(default_factory=list)
    created_at: TimeRange | None = None

    def to_kommo(self) -> dict[str, Any]:
        if self.entity_ids and len(self.entities) != 1:
            raise ValueError("filtering events by entity_ids needs exactly one entity")
        return _filter_params(
            {
                "type": self.types,
                "entity": self.entities,
                "entity_id": self.entity_ids,
                "created_by": self.created_by,
                "created_at": self.created_at,
            }
        )


def _filter_params(values: dict[str, Any]) -> dict[str, Any]:
    """The `filter[…]` of a list call: time ranges as `from`/`to`, what is not set left out."""
    rendered = {
        key: value.to_kommo() if isinstance(value, TimeRange) else value
        for key, value in values.items()
    }
    return {key: value for key, value in rendered.items() if value not in (None, [], {})}
