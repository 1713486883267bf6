"""What the sandbox sends out: Kommo's webhook bodies and its Salesbot's widget call.

A webhook is form-encoded with PHP-style bracket keys, every value a string, one change per
request under `{section}[{action}][0]`, and the account at the end:
`leads[status][0][id]=42&…&account[subdomain]=acme&account[id]=1&account[_links][self]=…`
(Kommo, "Webhooks": https://developers.kommo.com/docs/webhooks-general). The field names
are those of the live hooks quoted in tests/unit/test_webhook_parsing.py, which the
platform's parser (crm/kommo/webhooks.py) reads: leads, contacts and companies carry their
v2 fields (`date_create`, `last_modified`, `custom_fields[…][values][…][enum]`), notes sit
under `{section}[note][0][note]`, tasks under `task`, talks under `talk` (keyed by
`talk_id`), chat messages under `message[add]` with `type` incoming or outgoing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    CHAT_ORIGIN,
    EVENT_ENTITY,
    Company,
    Contact,
    EntityType,
    FieldValues,
    Lead,
    Message,
    Note,
    SalesbotRun,
    SandboxStore,
    Talk,
    Task,
)

# The store's entity names → the webhook's section and the subscription setting's noun.
SECTIONS = {
    "leads": "leads",
    "contacts": "contacts",
    "companies": "companies",
    "tasks": "task",
    "talks": "talk",
    "messages": "message",
}
SETTING_NOUNS = {**EVENT_ENTITY, "talks": "talk"}
# Webhooks still number entities and note types as Kommo's API v2 did.
ELEMENT_TYPES: dict[EntityType, int] = {"contacts": 1, "leads": 2, "companies": 3}
NOTE_TYPE_NUMBERS = {"common": 4, "call_in": 10, "call_out": 11, "service_message": 25}


@dataclass(frozen=True, slots=True)
class AccountRef:
    """The account as every webhook names it."""

    subdomain: str
    id: int = ACCOUNT_ID

    @property
    def url(self) -> str:
        # Kommo links its own address; the platform never calls a host a webhook names.
        return f"https://{self.subdomain}.kommo.com"


def webhook_setting(entity: str, action: str, record: object) -> str | None:
    """The subscription setting that asks for this change (add_lead, note_contact,
    add_outgoing_message…); None when Kommo sends no webhook for it."""
    if isinstance(record, Message):
        return "add_message" if record.direction == "incoming" else "add_outgoing_message"
    noun = SETTING_NOUNS.get(entity)
    return None if noun is None else f"{action}_{noun}"


def webhook_form(
    store: SandboxStore, account: AccountRef, entity: str, action: str, record: object
) -> str:
    """The form-encoded body of the webhook for one change."""
    tree = {
        SECTIONS[entity]: {action: [_item(store, action, record)]},
        "account": {
            "subdomain": account.subdomain,
            "id": account.id,
            "_links": {"self": account.url},
        },
    }
    return urlencode(bracket_pairs(tree))


def widget_request(run: SalesbotRun, account: AccountRef) -> dict[str, Any]:
    """The Salesbot's call to its widget: the block's data and where to continue the bot.

    `data` is what the bot's designer puts in the widget block; the sandbox's bot sends the
    customer's message and the ids of the lead, its contact, talk and chat, as strings, as
    Kommo's placeholders are. Kommo adds a `token` (a JWT signed with the integration's
    secret); the sandbox's bot belongs to no integration, so it sends none.
    """
    message = run.message
    return {
        "data": {
            "message": message.text,
            "lead_id": str(message.lead_id),
            "contact_id": None if message.contact_id is None else str(message.contact_id),
            "talk_id": str(message.talk_id),
            "chat_id": message.chat_id,
        },
        "return_url": f"{account.url}/api/v4/salesbot/{run.bot_id}/continue/{run.continue_id}",
    }


def bracket_pairs(tree: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`{"a": {"b": [{"c": 1}]}}` as `[("a[b][0][c]", "1")]`; None is left out, a bool is 1/0."""
    pairs: list[tuple[str, str]] = []

    def walk(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for name, inner in value.items():
                walk(f"{key}[{name}]", inner)
        elif isinstance(value, list | tuple):
            for index, inner in enumerate(value):
                walk(f"{key}[{index}]", inner)
        elif isinstance(value, bool):
            pairs.append((key, "1" if value else "0"))
        else:
            pairs.append((key, str(value)))

    for name, value in tree.items():
        walk(name, value)
    return pairs


def _item(store: SandboxStore, action: str, record: object) -> dict[str, Any]:
    match record:
        case Lead():
            return _lead(store, action, record)
        case Contact():
            return _contact(store, record)
        case Company():
            return _company(store, record)
        case Note():
            return {"note": _note(record)}
        case Task():
            return _task(record)
        case Talk():
            return _talk(record)
        case Message():
            return _message(record)
    raise TypeError(f"no webhook describes a {type(record).__name__}")


def _lead(store: SandboxStore, action: str, lead: Lead) -> dict[str, Any]:
    item = _entity_fields(store, "leads", lead) | {
        "status_id": lead.status_id,
        "pipeline_id": lead.pipeline_id,
        "price": lead.price,
    }
    # The store's event feed remembers what a status or owner change replaced.
    if action == "status":
        event = store.latest_event("lead_status_changed", lead.id)
        if event is not None:
            old = event.value_before[0]["lead_status"]
            item |= {"old_status_id": old["id"], "old_pipeline_id": old["pipeline_id"]}
    if action == "responsible":
        event = store.latest_event("entity_responsible_changed", lead.id)
        if event is not None:
            item["old_responsible_user_id"] = event.value_before[0]["responsible_user"]["id"]
    return item


def _contact(store: SandboxStore, contact: Contact) -> dict[str, Any]:
    return _entity_fields(store, "contacts", contact) | {
        "type": "contact",
        "linked_company_id": contact.company_id,
        "linked_leads_id": {
            str(lead.id): {"ID": lead.id} for lead in store.leads_of_contact(contact.id)
        },
    }


def _company(store: SandboxStore, company: Company) -> dict[str, Any]:
    return _entity_fields(store, "companies", company) | {"type": "company"}


def _entity_fields(
    store: SandboxStore, entity_type: EntityType, record: Lead | Contact | Company
) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "responsible_user_id": record.responsible_user_id,
        "created_user_id": record.created_by,
        "modified_user_id": record.updated_by,
        "date_create": record.created_at,
        "last_modified": record.updated_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "account_id": ACCOUNT_ID,
        "tags": [
            {"id": tag.id, "name": tag.name}
            for tag_id in record.tag_ids
            if (tag := store.tag(entity_type, tag_id)) is not None
        ],
        "custom_fields": [
            _custom_field(store, entity_type, values) for values in record.custom_fields
        ],
    }


def _custom_field(
    store: SandboxStore, entity_type: EntityType, values: FieldValues
) -> dict[str, Any]:
    definition = store.custom_field(entity_type, values.field_id)
    return {
        "id": values.field_id,
        "name": definition.name if definition else None,
        "code": definition.code if definition else None,
        "values": [{"value": value.value, "enum": value.enum_id} for value in values.values],
    }


def _note(note: Note) -> dict[str, Any]:
    text = note.params.get("text")
    return {
        "id": note.id,
        "note_type": NOTE_TYPE_NUMBERS.get(note.note_type, note.note_type),
        "element_id": note.entity_id,
        "element_type": ELEMENT_TYPES[note.entity_type],
        # A call's note has no text of its own: Kommo's v2 text is its parameters as JSON.
        "text": text if isinstance(text, str) else json.dumps(note.params, ensure_ascii=False),
        "created_by": note.created_by,
        "date_create": note.created_at,
        "account_id": ACCOUNT_ID,
    }


def _task(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "element_id": task.entity_id,
        "element_type": None if task.entity_type is None else ELEMENT_TYPES[task.entity_type],
        "task_type": task.task_type_id,
        "text": task.text,
        "status": task.is_completed,
        "complete_till": task.complete_till,
        "responsible_user_id": task.responsible_user_id,
        "created_user_id": task.created_by,
        "modified_user_id": task.updated_by,
        "date_create": task.created_at,
        "last_modified": task.updated_at,
        "result": {"text": task.result_text},
        "account_id": ACCOUNT_ID,
    }


def _talk(talk: Talk) -> dict[str, Any]:
    return {
        "talk_id": talk.id,
        "chat_id": talk.chat_id,
        "contact_id": talk.contact_id,
        "entity_id": talk.lead_id,
        "entity_type": "lead",
        "created_at": talk.created_at,
        "updated_at": talk.updated_at,
        "origin": CHAT_ORIGIN,
        "account_id": ACCOUNT_ID,
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "chat_id": message.chat_id,
        "talk_id": message.talk_id,
        "contact_id": message.contact_id,
        "text": message.text,
        "created_at": message.created_at,
        "element_type": ELEMENT_TYPES["leads"],
        "element_id": message.lead_id,
        "entity_type": "lead",
        "entity_id": message.lead_id,
        "type": message.direction,
        "author": {
            "id": message.author_id,
            # The customer writes from outside Kommo; a manager is one of its users.
            "type": "external" if message.direction == "incoming" else "user",
            "name": message.author_name,
        },
        "origin": CHAT_ORIGIN,
    }
