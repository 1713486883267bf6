"""Reading Kommo's webhooks: form-encoded, with PHP-style bracket keys.

`message[add][0][text]=Hi&account[subdomain]=acme` becomes
`{"message": {"add": [{"text": "Hi"}]}, "account": {"subdomain": "acme"}}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Top-level sections Kommo sends (events on leads, contacts, companies, tasks, chats).
KNOWN_SECTIONS = frozenset(
    {
        "account",
        "leads",
        "contacts",
        "companies",
        "customers",
        "task",
        "message",
        "talk",
        "unsorted",
    }
)
EVENT_SECTIONS = KNOWN_SECTIONS - {"account"}
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
MAX_DEPTH = 8
ENTITY_TYPES = {"1": "contacts", "2": "leads", "contact": "contacts", "lead": "leads"}


class WebhookFormatError(ValueError):
    """The body is not a Kommo webhook; the message says what is wrong."""


def parse_bracket_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest PHP bracket keys; numeric keys become list positions ordered by index."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            raise WebhookFormatError(f"malformed field name {key[:80]!r}")
        parts = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
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
    return _lists_from_indexes(tree)  # type: ignore[no-any-return]


def _lists_from_indexes(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists_from_indexes(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


@dataclass(frozen=True)
class IncomingMessage:
    """A message in a Kommo chat, as the `message[add]` event describes it."""

    message_id: str
    text: str
    chat_id: str | None
    talk_id: int | None
    contact_id: int | None
    entity_type: str
    entity_id: int
    direction: str  # "incoming" from the customer, "outgoing" from a manager or bot

    @property
    def dedupe_key(self) -> str:
        return f"message:{self.message_id}"


@dataclass(frozen=True)
class KommoWebhook:
    account_subdomain: str | None
    account_id: int | None
    messages: list[IncomingMessage]
    sections: frozenset[str]
    raw: dict[str, Any]


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _message(item: Any, position: int) -> IncomingMessage:
    if not isinstance(item, dict):
        raise WebhookFormatError(f"message[add][{position}] is not an object")
    missing = [name for name in ("id", "text", "element_id") if not item.get(name)]
    if missing:
        raise WebhookFormatError(f"message[add][{position}] lacks {', '.join(missing)}")
    entity_id = _int_or_none(item["element_id"])
    if entity_id is None:
        raise WebhookFormatError(f"message[add][{position}][element_id] is not a number")
    return IncomingMessage(
        message_id=str(item["id"])[:200],
        text=str(item["text"]),
        chat_id=item.get("chat_id") or None,
        talk_id=_int_or_none(item.get("talk_id")),
        contact_id=_int_or_none(item.get("contact_id")),
        entity_type=ENTITY_TYPES.get(str(item.get("element_type", "2")), "leads"),
        entity_id=entity_id,
        direction=str(item.get("type") or "incoming"),
    )


def _section(tree: dict[str, Any], name: str) -> dict[str, Any]:
    value = tree.get(name)
    return value if isinstance(value, dict) else {}


def read_webhook(pairs: Iterable[tuple[str, str]]) -> KommoWebhook:
    tree = parse_bracket_form(pairs)
    sections = frozenset(tree) & EVENT_SECTIONS
    if not sections:
        raise WebhookFormatError(
            "no Kommo event in the body (expected fields like message[add][0][text] or leads[add])"
        )
    account = _section(tree, "account")
    added = _section(tree, "message").get("add", [])
    if not isinstance(added, list):
        raise WebhookFormatError("message[add] must be a list of messages")
    return KommoWebhook(
        account_subdomain=account.get("subdomain"),
        account_id=_int_or_none(account.get("id")),
        messages=[_message(item, position) for position, item in enumerate(added)],
        sections=sections,
        raw=tree,
    )
