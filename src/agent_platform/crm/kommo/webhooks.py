"""Reading Kommo's webhooks into typed, normalized events.

Kommo (like amoCRM) posts `application/x-www-form-urlencoded` bodies with PHP-style bracket
keys, every value a string: `leads[status][0][id]=42&account[subdomain]=acme` is
`{"leads": {"status": [{"id": "42"}]}, "account": {"subdomain": "acme"}}`. Each top-level
section is an entity family, each key under it an action, each indexed item one event:

    section    actions                                          item id   the entity it concerns
    leads      add update delete restore status responsible     id        the lead itself
               note  (the item is {"note": {...}})              note id   the note's element
    contacts   add update delete restore responsible note       id        the contact
               (an item with type=company is a company: amoCRM files companies here too)
    companies  as contacts                                      id        the company
    customers  add update delete responsible note               id        the customer
    task       add update delete responsible                    id        element_type/element_id
    talk       add update                                       talk_id   entity_type/entity_id
    message    add  (type incoming: the customer; outgoing:     id        element_type/element_id
               a manager or a bot)                                        or entity_type/entity_id
    unsorted   add update delete                                uid       lead_id

The families and actions are those of Kommo's "Webhooks" page
(https://developers.kommo.com/docs/webhooks-general); the field names are those of the live
hooks quoted in tests/unit/test_webhook_parsing.py. A section we do not know becomes one
event of family `unknown`, so that nothing Kommo sends is lost or answered with an error.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_KEY_PART = re.compile(r"\[([^\[\]]*)\]")
MAX_DEPTH = 8
# Long enough for any Kommo id (message ids are UUIDs); keeps dedupe keys within their column.
MAX_ID_LENGTH = 100

EntityType = Literal["leads", "contacts", "companies", "customers"]
# Kommo names an entity by number (element_type) or by word, singular or plural.
_ENTITY_TYPES: dict[str, EntityType] = {
    "1": "contacts",
    "2": "leads",
    "3": "companies",
    "12": "customers",
    "contact": "contacts",
    "contacts": "contacts",
    "lead": "leads",
    "leads": "leads",
    "company": "companies",
    "companies": "companies",
    "customer": "customers",
    "customers": "customers",
}


class WebhookFormatError(ValueError):
    """The body is not a Kommo webhook; the message says what is wrong."""


class EventFamily(StrEnum):
    LEADS = "leads"
    CONTACTS = "contacts"
    COMPANIES = "companies"
    CUSTOMERS = "customers"
    TASKS = "tasks"
    TALKS = "talks"
    MESSAGES = "messages"
    UNSORTED = "unsorted"
    UNKNOWN = "unknown"


# Kommo's section name → family (Kommo says `task`, `talk`, `message` in the singular).
SECTION_FAMILIES: dict[str, EventFamily] = {
    "leads": EventFamily.LEADS,
    "contacts": EventFamily.CONTACTS,
    "companies": EventFamily.COMPANIES,
    "customers": EventFamily.CUSTOMERS,
    "task": EventFamily.TASKS,
    "talk": EventFamily.TALKS,
    "message": EventFamily.MESSAGES,
    "unsorted": EventFamily.UNSORTED,
}
_ENTITY_ACTIONS = frozenset({"add", "update", "delete", "restore", "responsible", "note"})
KNOWN_ACTIONS: dict[EventFamily, frozenset[str]] = {
    EventFamily.LEADS: _ENTITY_ACTIONS | {"status"},
    EventFamily.CONTACTS: _ENTITY_ACTIONS,
    EventFamily.COMPANIES: _ENTITY_ACTIONS,
    EventFamily.CUSTOMERS: _ENTITY_ACTIONS - {"restore"},
    EventFamily.TASKS: frozenset({"add", "update", "delete", "responsible"}),
    EventFamily.TALKS: frozenset({"add", "update"}),
    EventFamily.MESSAGES: frozenset({"add"}),
    EventFamily.UNSORTED: frozenset({"add", "update", "delete"}),
}
_ITEM_ID_FIELDS = {EventFamily.TALKS: "talk_id", EventFamily.UNSORTED: "uid"}


def parse_bracket_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest PHP bracket keys; numeric keys become list positions ordered by index."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        _check_storable(key, key)
        _check_storable(value, key)
        match = _KEY.match(key)
        if not match:
            raise WebhookFormatError(f"malformed field name {key[:80]!r}")
        parts = [match.group(1), *_KEY_PART.findall(match.group(2))]
        if len(parts) > MAX_DEPTH:
            raise WebhookFormatError(f"field name {key[:80]!r} is nested too deeply")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise WebhookFormatError(f"field {key[:80]!r} conflicts with another field")
            node = child
        if isinstance(node.get(parts[-1]), dict):
            raise WebhookFormatError(f"field {key[:80]!r} conflicts with another field")
        node[parts[-1]] = value
    # The top level stays a mapping of field names, even when they look like indexes.
    return {name: _lists_from_indexes(value) for name, value in tree.items()}


def _check_storable(text: str, field_name: str) -> None:
    """PostgreSQL's JSON keeps neither NUL nor lone surrogates: such a body is not Kommo's."""
    if "\x00" in text or (not text.isascii() and _has_surrogates(text)):
        raise WebhookFormatError(f"field {field_name[:80]!r} holds characters that are not text")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _check_storable_json(value: Any, where: str = "body", depth: int = 0) -> None:
    """Every string in a JSON value, keys included, is storable (see _check_storable)."""
    if depth > MAX_DEPTH * 4:
        raise WebhookFormatError(f"{where[:80]} is nested too deeply")
    if isinstance(value, str):
        _check_storable(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, where)
            _check_storable_json(item, f"{where[:80]}.{key[:40]}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_storable_json(item, where, depth + 1)


def _lists_from_indexes(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_indexes(value) for key, value in node.items()}
    if converted and all(_is_index(key) for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _is_index(key: str) -> bool:
    # ASCII only: str.isdigit() also accepts "²", which int() refuses.
    return key.isascii() and key.isdigit()


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """A message in a Kommo chat, as the `message[add]` event (or a Salesbot) describes it."""

    message_id: str
    text: str
    chat_id: str | None
    talk_id: int | None
    contact_id: int | None
    entity_type: str
    entity_id: int
    direction: str  # "incoming" from the customer, "outgoing" from a manager or bot
    # The chat participant who wrote it: for an incoming message, the customer's Chats API id.
    author_id: str | None = None
    author_name: str | None = None

    @property
    def dedupe_key(self) -> str:
        return f"message:{self.message_id}"

    @property
    def is_from_customer(self) -> bool:
        return self.direction == "incoming"


@dataclass(frozen=True, slots=True)
class CustomFieldValue:
    value: str
    enum_id: int | None = None


@dataclass(frozen=True, slots=True)
class CustomField:
    """A custom field's values as a webhook carries them (values are always strings there)."""

    field_id: int | None
    name: str | None
    code: str | None
    values: tuple[CustomFieldValue, ...]


@dataclass(frozen=True, slots=True)
class KommoEvent:
    """One change Kommo told us about.

    `item_id` is Kommo's id of the item the event describes (a lead's, a note's, a task's,
    a talk's id, a message's id or an unsorted item's uid); `entity_type`/`entity_id` name the
    lead, contact, company or customer the event concerns, when Kommo says. `data` is the item
    as Kommo sent it.
    """

    section: str
    family: EventFamily
    action: str
    item_id: str | None
    entity_type: EntityType | None
    entity_id: int | None
    account_id: int | None
    data: dict[str, Any]
    custom_fields: tuple[CustomField, ...] = ()
    message: IncomingMessage | None = None

    @property
    def is_known(self) -> bool:
        return self.action in KNOWN_ACTIONS.get(self.family, frozenset())

    @property
    def dedupe_key(self) -> str:
        """The same for Kommo's retries of this event, different for any other event.

        A retry re-sends the very same item, so a digest of it is stable; a genuine second
        change differs at least in its modification time or its values. Messages have ids
        that are unique on their own.
        """
        if self.message is not None:
            return self.message.dedupe_key
        canonical = json.dumps(self.data, sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        item_id = (self.item_id or "-")[:MAX_ID_LENGTH]
        return f"{self.section[:40]}:{self.action[:40]}:{item_id}:{digest}"

    def to_payload(self) -> dict[str, Any]:
        """What the inbox keeps of the event (JSON)."""
        payload: dict[str, Any] = {
            "section": self.section,
            "family": self.family.value,
            "action": self.action,
            "item_id": self.item_id,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "account_id": self.account_id,
            "custom_fields": [_custom_field_json(f) for f in self.custom_fields],
            "data": self.data,
        }
        if self.message is not None:
            payload["message"] = message_json(self.message)
        return payload


@dataclass(frozen=True)
class KommoWebhook:
    account_id: int | None
    account_subdomain: str | None
    events: tuple[KommoEvent, ...] = ()

    @property
    def messages(self) -> list[IncomingMessage]:
        return [event.message for event in self.events if event.message is not None]


def read_webhook(pairs: Iterable[tuple[str, str]]) -> KommoWebhook:
    """The events of a form-encoded Kommo webhook; WebhookFormatError when it is none."""
    tree = parse_bracket_form(pairs)
    account = tree.get("account")
    account = account if isinstance(account, dict) else {}
    account_id = _int_or_none(account.get("id"))
    sections = {
        name: body
        for name, body in tree.items()
        if name != "account" and isinstance(body, dict | list)
    }
    if not sections:
        raise WebhookFormatError(
            "no Kommo event in the body (expected fields like leads[add][0][id] or "
            "message[add][0][text])"
        )
    events: list[KommoEvent] = []
    for name, body in sections.items():
        family = SECTION_FAMILIES.get(name)
        if family is None:
            events.append(_unknown_event(name, body, account_id))
        else:
            events.extend(_section_events(name, family, body, account_id))
    return KommoWebhook(
        account_id=account_id,
        account_subdomain=_str_or_none(account.get("subdomain")),
        events=tuple(events),
    )


def _section_events(
    name: str, family: EventFamily, body: Any, account_id: int | None
) -> list[KommoEvent]:
    if not isinstance(body, dict):
        raise WebhookFormatError(f"{name} must hold actions, like {name}[add][0][id]")
    events = []
    for action, items in body.items():
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise WebhookFormatError(f"{name}[{action[:40]}] must be a list of objects")
        for position, item in enumerate(items):
            where = f"{name}[{action[:40]}][{position}]"
            events.append(_event(name, family, action, item, account_id, where))
    return events


def _event(
    section: str,
    family: EventFamily,
    action: str,
    item: dict[str, Any],
    account_id: int | None,
    where: str,
) -> KommoEvent:
    if family is EventFamily.MESSAGES:
        message = _message(item, where)
        return KommoEvent(
            section=section,
            family=family,
            action=action,
            item_id=message.message_id,
            entity_type=_entity_type(message.entity_type),
            entity_id=message.entity_id,
            account_id=_int_or_none(item.get("account_id")) or account_id,
            data=item,
            message=message,
        )
    if family is EventFamily.CONTACTS and item.get("type") == "company":
        family = EventFamily.COMPANIES
    subject = item
    if action == "note" and isinstance(item.get("note"), dict):
        subject = item["note"]
    item_id = _str_or_none(subject.get(_ITEM_ID_FIELDS.get(family, "id")))
    entity_type, entity_id = _concerned_entity(family, action, subject)
    return KommoEvent(
        section=section,
        family=family,
        action=action,
        item_id=item_id[:MAX_ID_LENGTH] if item_id else None,
        entity_type=entity_type,
        entity_id=entity_id,
        account_id=_int_or_none(subject.get("account_id")) or account_id,
        data=item,
        custom_fields=_custom_fields(subject.get("custom_fields")),
    )


def _concerned_entity(
    family: EventFamily, action: str, item: Mapping[str, Any]
) -> tuple[EntityType | None, int | None]:
    if family in (
        EventFamily.LEADS,
        EventFamily.CONTACTS,
        EventFamily.COMPANIES,
        EventFamily.CUSTOMERS,
    ):
        if action == "note":
            return (
                _entity_type(item.get("element_type")) or family.value,  # type: ignore[return-value]
                _int_or_none(item.get("element_id")),
            )
        return family.value, _int_or_none(item.get("id"))  # type: ignore[return-value]
    if family is EventFamily.TASKS:
        return _entity_type(item.get("element_type")), _int_or_none(item.get("element_id"))
    if family is EventFamily.TALKS:
        return _entity_type(item.get("entity_type")), _int_or_none(item.get("entity_id"))
    if family is EventFamily.UNSORTED:
        return "leads", _int_or_none(item.get("lead_id"))
    return None, None


def _unknown_event(name: str, body: Any, account_id: int | None) -> KommoEvent:
    return KommoEvent(
        section=name[:100],
        family=EventFamily.UNKNOWN,
        action="unknown",
        item_id=None,
        entity_type=None,
        entity_id=None,
        account_id=account_id,
        data={"body": body},
    )


def _message(item: dict[str, Any], where: str) -> IncomingMessage:
    message_id = _str_or_none(item.get("id"))
    raw_entity_id = item.get("element_id") or item.get("entity_id")
    missing = [
        label
        for label, value in (("id", message_id), ("element_id (or entity_id)", raw_entity_id))
        if not value
    ]
    if missing:
        raise WebhookFormatError(f"{where} lacks {', '.join(missing)}")
    entity_id = _int_or_none(raw_entity_id)
    if entity_id is None:
        raise WebhookFormatError(f"{where}[element_id] is not a number")
    author = item.get("author")
    author = author if isinstance(author, dict) else {}
    text = item.get("text")
    return IncomingMessage(
        message_id=str(message_id)[:MAX_ID_LENGTH],
        # A picture or a file comes without text; the message is kept, not answered.
        text=text if isinstance(text, str) else "",
        chat_id=_str_or_none(item.get("chat_id")),
        talk_id=_int_or_none(item.get("talk_id")),
        contact_id=_int_or_none(item.get("contact_id")),
        entity_type=_entity_type(item.get("element_type") or item.get("entity_type") or "2")
        or "leads",
        entity_id=entity_id,
        direction=_str_or_none(item.get("type")) or "incoming",
        author_id=_str_or_none(author.get("id")),
        author_name=_str_or_none(author.get("name")),
    )


def _custom_fields(raw: Any) -> tuple[CustomField, ...]:
    """`custom_fields[i][values][j]` is `{value, enum}`, or a bare string (dates and such)."""
    if not isinstance(raw, list):
        return ()
    fields = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        values = entry.get("values")
        if isinstance(values, dict | str):
            values = [values]
        parsed = []
        for value in values if isinstance(values, list) else []:
            if isinstance(value, str):
                parsed.append(CustomFieldValue(value))
            elif isinstance(value, dict) and isinstance(value.get("value"), str):
                parsed.append(CustomFieldValue(value["value"], _int_or_none(value.get("enum"))))
        fields.append(
            CustomField(
                field_id=_int_or_none(entry.get("id")),
                name=_str_or_none(entry.get("name")),
                code=_str_or_none(entry.get("code")),
                values=tuple(parsed),
            )
        )
    return tuple(fields)


def _custom_field_json(custom_field: CustomField) -> dict[str, Any]:
    return {
        "id": custom_field.field_id,
        "name": custom_field.name,
        "code": custom_field.code,
        "values": [{"value": v.value, "enum_id": v.enum_id} for v in custom_field.values],
    }


def message_json(message: IncomingMessage) -> dict[str, Any]:
    """The message as the inbox keeps it; `IncomingMessage(**message_json(m)) == m`."""
    return asdict(message)


def _entity_type(value: Any) -> EntityType | None:
    return _ENTITY_TYPES.get(value) if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return int(value) if isinstance(value, str) and _is_index(value) else None


def _str_or_none(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


# --- Salesbot widget_request ----------------------------------------------------------------

_CONTINUE_PATH = re.compile(r"/api/v4/salesbot/(\d+)/continue/(\d+)/?$")


@dataclass(frozen=True, slots=True)
class SalesbotRequest:
    """A Salesbot `widget_request`: the bot waits until we continue it with our answer.

    Kommo posts `token` (a JWT), `data` (what the bot's designer put in the block, for us
    `message` and `lead_id` or `contact_id`, optionally `talk_id` and `chat_id`) and
    `return_url` (`…/api/v4/salesbot/{bot_id}/continue/{continue_id}`). Only the two ids are
    taken from the URL: the continue call goes to the connection's own Kommo address, never
    to a host named in a request.
    """

    bot_id: int
    continue_id: int
    message: IncomingMessage
    data: dict[str, Any]

    @property
    def dedupe_key(self) -> str:
        return f"salesbot:{self.bot_id}:{self.continue_id}"


def read_salesbot_request(body: Mapping[str, Any]) -> SalesbotRequest:
    """The widget_request in a JSON or bracket-form body; WebhookFormatError when it is none."""
    _check_storable_json(dict(body))
    data = body.get("data")
    if not isinstance(data, dict):
        raise WebhookFormatError("a widget_request carries a `data` object")
    bot_id, continue_id = _continuation(body)
    text = _str_or_none(data.get("message")) or _str_or_none(data.get("text"))
    if text is None:
        raise WebhookFormatError("data.message (the customer's text) is missing")
    lead_id = _int_or_none(data.get("lead_id"))
    contact_id = _int_or_none(data.get("contact_id"))
    if lead_id is None and contact_id is None:
        raise WebhookFormatError("data.lead_id or data.contact_id (a number) is needed")
    message = IncomingMessage(
        message_id=f"salesbot:{bot_id}:{continue_id}",
        text=text,
        chat_id=_str_or_none(data.get("chat_id")),
        talk_id=_int_or_none(data.get("talk_id")),
        contact_id=contact_id,
        entity_type="leads" if lead_id is not None else "contacts",
        entity_id=lead_id if lead_id is not None else contact_id,  # type: ignore[arg-type]
        direction="incoming",
    )
    return SalesbotRequest(bot_id=bot_id, continue_id=continue_id, message=message, data=data)


def _continuation(body: Mapping[str, Any]) -> tuple[int, int]:
    return_url = body.get("return_url")
    if isinstance(return_url, str):
        match = _CONTINUE_PATH.search(urlsplit(return_url).path)
        if match:
            return int(match.group(1)), int(match.group(2))
    bot_id, continue_id = _int_or_none(body.get("bot_id")), _int_or_none(body.get("continue_id"))
    if bot_id is None or continue_id is None:
        raise WebhookFormatError(
            "return_url must end with /api/v4/salesbot/{bot_id}/continue/{continue_id}"
        )
    return bot_id, continue_id
