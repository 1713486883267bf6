"""The CRM port (crm/ports.py) over Kommo's API v4, for one connection.

Every request goes through call_kommo (a valid token, the account's rate limit, one refresh
on a 401). Tasks go through crm/records, so they are mirrored in our database and pushed to
Kommo by a job with an idempotency key, like the tasks the REST API creates. Notes are
deliveries (crm_deliveries) under their caller's key, sent as the agent's note replies are.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import TypeVar

from agent_platform.crm import repository as crm
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.delivery.base import SentReply
from agent_platform.crm.kommo.delivery.notes import NoteSender
from agent_platform.crm.kommo.errors import KommoNotFound, KommoValidationError
from agent_platform.crm.kommo.models import CustomField, CustomFieldInput, Lead, LeadUpdate, TagRef
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.models import CrmDelivery, DeliveryStatus, ReplyChannel
from agent_platform.crm.ports import CrmActionError, LeadContext
from agent_platform.crm.records import service as records
from agent_platform.crm.records.schemas import TaskIn
from agent_platform.db.session import transaction
from agent_platform.services import Services

T = TypeVar("T")

_TRUE_WORDS = frozenset({"true", "yes", "1", "да"})
_FALSE_WORDS = frozenset({"false", "no", "0", "нет"})
_CHOICE_TYPES = frozenset({"select", "radiobutton", "multiselect"})
_DATE_TYPES = frozenset({"date", "date_time", "birthday"})


class KommoPort:
    def __init__(
        self, services: Services, organization_id: uuid.UUID, connection_id: uuid.UUID
    ) -> None:
        self._services = services
        self._organization_id = organization_id
        self._connection_id = connection_id

    async def lead_context(self, lead_id: int, field_ids: Collection[int] = ()) -> LeadContext:
        async def read(kommo: KommoClient) -> LeadContext:
            lead = await kommo.leads.get(lead_id)
            pipeline = await kommo.pipelines.get(lead.pipeline_id)
            stage = next((s.name for s in pipeline.statuses if s.id == lead.status_id), None)
            return LeadContext(
                id=lead.id,
                name=lead.name,
                pipeline=pipeline.name,
                stage=stage,
                price=lead.price,
                tags=tuple(tag.name for tag in lead.tags),
                fields=_shown_fields(lead, field_ids),
            )

        return await self._call(read)

    async def create_task(self, lead_id: int, text: str, due_at: datetime) -> None:
        task = TaskIn(
            connection_id=self._connection_id,
            lead_id=lead_id,
            text=text,
            complete_till=due_at.astimezone(UTC).replace(microsecond=0),
        )
        await records.create_task(self._services, self._organization_id, task)

    async def move_stage(
        self, lead_id: int, status_id: int, pipeline_id: int | None = None
    ) -> None:
        """To the stage in `pipeline_id`, or, when None, in the pipeline that has it."""

        async def move(kommo: KommoClient) -> None:
            lead = await kommo.leads.get(lead_id)
            # Closing stages exist in every pipeline: the lead's own pipeline is tried first.
            pipelines = sorted(await kommo.pipelines.all(), key=lambda p: p.id != lead.pipeline_id)
            target = next(
                (
                    p
                    for p in pipelines
                    if pipeline_id in (None, p.id) and any(s.id == status_id for s in p.statuses)
                ),
                None,
            )
            if target is None:
                where = "" if pipeline_id is None else f" in pipeline {pipeline_id}"
                raise CrmActionError(f"There is no stage with id {status_id}{where}.")
            await kommo.leads.move(lead_id, status_id, pipeline_id=target.id)

        await self._call(move)

    async def set_custom_field(self, lead_id: int, field: int | str, value: str) -> None:
        async def write(kommo: KommoClient) -> None:
            definition = await _field_definition(kommo, field)
            change = LeadUpdate(id=lead_id, custom_fields_values=[_field_input(definition, value)])
            await kommo.leads.update_one(change)

        await self._call(write)

    async def add_tag(self, lead_id: int, tag: str) -> None:
        async def tag_lead(kommo: KommoClient) -> None:
            lead = await kommo.leads.get(lead_id)
            if any(existing.name.casefold() == tag.casefold() for existing in lead.tags):
                return
            # Kommo replaces a lead's tags with those sent: the existing ones go along.
            tags = [TagRef(id=existing.id) for existing in lead.tags] + [TagRef(name=tag)]
            await kommo.leads.update_one(LeadUpdate(id=lead_id, tags=tags))

        await self._call(tag_lead)

    async def remove_tag(self, lead_id: int, tag: str) -> None:
        async def untag_lead(kommo: KommoClient) -> None:
            lead = await kommo.leads.get(lead_id)
            kept = [TagRef(id=t.id) for t in lead.tags if t.name.casefold() != tag.casefold()]
            if len(kept) == len(lead.tags):
                return
            # Kommo replaces a lead's tags with those sent; None detaches the last one.
            await kommo.leads.update_one(LeadUpdate(id=lead_id, tags=kept or None))

        await self._call(untag_lead)

    async def add_note(self, lead_id: int, text: str, *, key: str) -> None:
        async with transaction(self._services.sessions) as session:
            delivery = await crm.delivery_by_key(session, key) or await crm.add_delivery(
                session,
                CrmDelivery(
                    organization_id=self._organization_id,
                    connection_id=self._connection_id,
                    idempotency_key=key,
                    kind=ReplyChannel.NOTE.value,
                    entity_type="leads",
                    entity_id=lead_id,
                    payload={"text": text},
                    status=DeliveryStatus.PENDING.value,
                ),
            )
        if delivery.status == DeliveryStatus.SENT.value:
            return
        sent = await self._call(lambda kommo: self._send_note(kommo, delivery))
        async with transaction(self._services.sessions) as session:
            await crm.mark_delivery_sent(session, delivery.id, sent.external_id)

    async def _send_note(self, kommo: KommoClient, delivery: CrmDelivery) -> SentReply:
        sender = NoteSender(kommo)
        # An earlier attempt may have reached Kommo before its worker died: look first.
        if delivery.attempts > 0:
            found = await sender.find_sent(delivery)
            if found is not None:
                return found
        async with transaction(self._services.sessions) as session:
            await crm.count_delivery_attempt(session, delivery.id)
        return await sender.send(delivery, may_have_been_sent=delivery.attempts > 0)

    async def assign(self, lead_id: int, user_id: int) -> None:
        async def assign_lead(kommo: KommoClient) -> None:
            await kommo.leads.update_one(LeadUpdate(id=lead_id, responsible_user_id=user_id))

        await self._call(assign_lead)

    async def _call(self, operation: Callable[[KommoClient], Awaitable[T]]) -> T:
        """Kommo's refusals of the request itself become errors the model can read; the
        connection's troubles (auth, rate limit, outage) stay exceptions for the job's retry."""
        try:
            return await call_kommo(self._services, self._connection_id, operation)
        except KommoNotFound as exc:
            raise CrmActionError(f"Kommo does not know it: {exc.detail}") from exc
        except KommoValidationError as exc:
            raise CrmActionError(f"Kommo refused the change: {exc.detail}") from exc


def _shown_fields(lead: Lead, field_ids: Collection[int]) -> dict[str, object]:
    shown: dict[str, object] = {}
    for values in lead.custom_fields_values or []:
        if values.field_id in field_ids:
            name = values.field_name or values.field_code or str(values.field_id)
            items = [item.value for item in values.values]
            shown[name] = items[0] if len(items) == 1 else items
    return shown


async def _field_definition(kommo: KommoClient, field: int | str) -> CustomField:
    if isinstance(field, int):
        return await kommo.custom_fields.get("leads", field)
    async for definition in kommo.custom_fields.iterate("leads"):
        if definition.code == field:
            return definition
    raise CrmActionError(f"Leads have no custom field with the code {field!r}.")


def _field_input(definition: CustomField, value: str) -> CustomFieldInput:
    """The value in the shape the field's type takes, or CrmActionError saying what fits;
    an empty value clears the field."""
    text = value.strip()
    if not text:
        return CustomFieldInput.of(definition.id)
    if definition.type in _CHOICE_TYPES:
        enum_id = definition.enum_id(text)
        if enum_id is None:
            choices = ", ".join(choice.value for choice in definition.enums or [])
            raise CrmActionError(f"{definition.name!r} takes one of: {choices}.")
        return CustomFieldInput.choice(definition.id, enum_id)
    if definition.type == "numeric":
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            raise CrmActionError(f"{definition.name!r} takes a number.") from None
        return CustomFieldInput.of(definition.id, int(number) if number.is_integer() else number)
    if definition.type == "checkbox":
        if text.casefold() not in _TRUE_WORDS | _FALSE_WORDS:
            raise CrmActionError(f"{definition.name!r} takes true or false.")
        return CustomFieldInput.of(definition.id, text.casefold() in _TRUE_WORDS)
    if definition.type in _DATE_TYPES:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise CrmActionError(f"{definition.name!r} takes a date as YYYY-MM-DD.") from None
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return CustomFieldInput.of(definition.id, int(aware.timestamp()))
    return CustomFieldInput.of(definition.id, text)
