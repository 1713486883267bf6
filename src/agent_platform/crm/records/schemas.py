"""What the CRM tasks and calls API reads and answers.

Ids are strict integers within PostgreSQL's bigint (Kommo's ids fit; a larger number or a
numeric string is refused with 422 rather than failing in the database), and text must be
storable as PostgreSQL text (no NUL, no lone surrogates).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from agent_platform.crm.kommo.models import FOLLOW_UP_TASK_TYPE_ID
from agent_platform.crm.models import CrmCall, CrmTask

MAX_BIGINT = 2**63 - 1
MAX_INTEGER = 2**31 - 1


def _storable(text: str) -> str:
    if "\x00" in text:
        raise ValueError("text cannot contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise ValueError("text must be valid Unicode (no lone surrogates)") from exc
    return text


def _whole_utc_second(moment: datetime) -> datetime:
    """Kommo keeps times in whole seconds: a deadline is kept as Kommo will have it."""
    try:
        return moment.astimezone(UTC).replace(microsecond=0)
    except OverflowError as exc:  # a zone pushing year 1 or 9999 out of range
        raise ValueError("the time is out of range") from exc


def _trimmed(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


Storable = AfterValidator(_storable)
KommoId = Annotated[int, Field(strict=True, ge=1, le=MAX_BIGINT)]
SmallKommoId = Annotated[int, Field(strict=True, ge=1, le=MAX_INTEGER)]
# Lengths are those of the columns they go into.
LongText = Annotated[str, _trimmed(10_000), Storable]
Phone = Annotated[str, _trimmed(64), Storable]
ShortText = Annotated[str, _trimmed(255), Storable]
Link = Annotated[str, _trimmed(1000), Storable]
Deadline = Annotated[AwareDatetime, AfterValidator(_whole_utc_second)]
TaskEntityType = Literal["leads", "contacts", "companies"]


class TaskIn(BaseModel):
    """A task to create in Kommo: on a lead (`lead_id`), or on any entity (`entity_type` and
    `entity_id`)."""

    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID | None = Field(
        default=None,
        description="The Kommo connection; may be left out when the organization has one.",
    )
    lead_id: KommoId | None = None
    entity_type: TaskEntityType | None = None
    entity_id: KommoId | None = None
    text: LongText
    complete_till: Deadline = Field(description="When the task is due (with a timezone).")
    task_type_id: SmallKommoId = Field(
        default=FOLLOW_UP_TASK_TYPE_ID, description="1 follow-up, 2 meeting, or a custom type."
    )
    responsible_user_id: KommoId | None = Field(
        default=None, description="The Kommo user; by default the connection's user."
    )

    @model_validator(mode="after")
    def _set_on_one_entity(self) -> Self:
        by_lead = self.lead_id is not None
        by_entity = self.entity_type is not None or self.entity_id is not None
        if by_lead == by_entity:
            raise ValueError("give either lead_id, or entity_type with entity_id")
        if by_entity and (self.entity_type is None or self.entity_id is None):
            raise ValueError("entity_type and entity_id go together")
        return self

    @property
    def entity(self) -> tuple[TaskEntityType, int]:
        if self.lead_id is not None:
            return "leads", self.lead_id
        assert self.entity_type is not None, "checked by _set_on_one_entity"
        assert self.entity_id is not None, "checked by _set_on_one_entity"
        return self.entity_type, self.entity_id


class TaskCompletionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result_text: LongText | None = Field(
        default=None, description="What came of it, as a manager would write."
    )


class TaskOut(BaseModel):
    id: uuid.UUID
    connection_id: uuid.UUID
    source: Literal["platform", "kommo"]
    kommo_id: int | None = Field(description="Kommo's id of the task, once it is there.")
    entity_type: str | None
    entity_id: int | None
    lead_id: int | None
    text: str
    task_type_id: int | None
    responsible_user_id: int | None
    complete_till: datetime | None
    status: Literal["open", "completed", "deleted"]
    completed_at: datetime | None
    result_text: str | None
    sync_status: Literal["pending", "synced", "failed"]
    sync_error: str | None = Field(description="Why Kommo has not got it, when sync failed.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, task: CrmTask) -> TaskOut:
        return cls(
            id=task.id,
            connection_id=task.connection_id,
            source=task.source,
            kommo_id=task.external_id,
            entity_type=task.entity_type,
            entity_id=task.entity_id,
            lead_id=task.entity_id if task.entity_type == "leads" else None,
            text=task.text,
            task_type_id=task.task_type_id,
            responsible_user_id=task.responsible_user_id,
            complete_till=task.complete_till,
            status=task.status,
            completed_at=task.completed_at,
            result_text=task.result_text,
            sync_status=task.sync_status,
            sync_error=task.sync_error,
            created_at=task.created_at,
            updated_at=task.updated_at,
        )


class CallIn(BaseModel):
    """A call to log in Kommo. Kommo files it by phone number; with only `lead_id`, the
    phone of the lead's main contact is used."""

    model_config = ConfigDict(extra="forbid")

    connection_id: uuid.UUID | None = Field(
        default=None,
        description="The Kommo connection; may be left out when the organization has one.",
    )
    lead_id: KommoId | None = None
    phone: Phone | None = None
    direction: Literal["inbound", "outbound"]
    duration: Annotated[int, Field(strict=True, ge=0, le=MAX_INTEGER)] = Field(
        description="Seconds."
    )
    source: ShortText = Field(description="Where the call comes from, e.g. the telephony's name.")
    uniq: ShortText | None = Field(
        default=None,
        description="The call's unique id (Kommo's `uniq`): a call already logged with it is "
        "not logged again. Generated when left out.",
    )
    link: Link | None = Field(default=None, description="The recording's address.")
    call_status: Annotated[int, Field(strict=True, ge=1, le=7)] | None = Field(
        default=None,
        description="Kommo's codes: 1 left a message, 2 call back later, 3 not available, "
        "4 conversation, 5 invalid number, 6 no connection, 7 line busy.",
    )
    call_result: LongText | None = None
    responsible_user_id: KommoId | None = None

    @model_validator(mode="after")
    def _lead_or_phone(self) -> Self:
        if self.lead_id is None and self.phone is None:
            raise ValueError("give lead_id or phone (Kommo files a call by phone number)")
        return self


class CallOut(BaseModel):
    id: uuid.UUID
    connection_id: uuid.UUID
    kommo_id: int | None = Field(description="Kommo's id of the call, once it is there.")
    uniq: str
    lead_id: int | None
    entity_type: str | None = Field(description="The card Kommo filed the call on.")
    entity_id: int | None
    direction: Literal["inbound", "outbound"]
    duration: int
    source: str
    phone: str | None
    link: str | None
    call_status: int | None
    call_result: str | None
    responsible_user_id: int | None
    sync_status: Literal["pending", "synced", "failed"]
    sync_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, call: CrmCall) -> CallOut:
        return cls(
            id=call.id,
            connection_id=call.connection_id,
            kommo_id=call.external_id,
            uniq=call.uniq,
            lead_id=call.lead_id,
            entity_type=call.entity_type,
            entity_id=call.entity_id,
            direction=call.direction,
            duration=call.duration_seconds,
            source=call.source,
            phone=call.phone,
            link=call.link,
            call_status=call.call_status,
            call_result=call.call_result,
            responsible_user_id=call.responsible_user_id,
            sync_status=call.sync_status,
            sync_error=call.sync_error,
            created_at=call.created_at,
            updated_at=call.updated_at,
        )
