"""A lead's conversation as the sandbox's page shows it: who wrote what, in order.

One timeline from four sources: the lead's chat messages in the store (the customer's and the
managers'), and what the platform answered by each reply channel: notes on the lead; Chats
API messages in the lead's chat (they name as their conversation the chat id that the
message webhook carried); and the `show` texts of Salesbot continues for the bot runs the
lead's messages started.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from agent_platform.crm.sandbox.chats import ChatsChannel
from agent_platform.crm.sandbox.salesbot import SalesbotRecord
from agent_platform.crm.sandbox.store import SandboxStore

EntryKind = Literal["customer", "manager", "note", "chat", "salesbot"]
WRITTEN_BY_PEOPLE: frozenset[EntryKind] = frozenset({"customer", "manager"})


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    at: float  # unix seconds
    kind: EntryKind
    author: str
    text: str


def lead_timeline(
    store: SandboxStore, lead_id: int, chats: ChatsChannel, salesbot: SalesbotRecord
) -> list[TimelineEntry]:
    entries = [
        *_chat_messages(store, lead_id),
        *_notes(store, lead_id),
        *_chats_replies(store, lead_id, chats),
        *_salesbot_answers(store, lead_id, salesbot),
    ]
    # The store stamps whole seconds, the channels fractions: within one second what people
    # wrote comes first (a reply follows its question), and the sort keeps each source's order.
    return sorted(entries, key=lambda entry: (int(entry.at), entry.kind not in WRITTEN_BY_PEOPLE))


def _chat_messages(store: SandboxStore, lead_id: int) -> Iterator[TimelineEntry]:
    for message in store.messages_of(lead_id):
        kind: EntryKind = "customer" if message.direction == "incoming" else "manager"
        yield TimelineEntry(message.created_at, kind, message.author_name, message.text)


def _notes(store: SandboxStore, lead_id: int) -> Iterator[TimelineEntry]:
    for note in store.notes("leads", lead_id):
        text = note.params.get("text")
        user = store.user(note.created_by)
        yield TimelineEntry(
            note.created_at,
            "note",
            user.name if user else f"user {note.created_by}",
            text if isinstance(text, str) else f"({note.note_type} note)",
        )


def _chats_replies(
    store: SandboxStore, lead_id: int, chats: ChatsChannel
) -> Iterator[TimelineEntry]:
    talk = store.talk_of(lead_id)
    if talk is None:
        return
    for message in chats.messages.values():
        if talk.chat_id in (message.conversation_id, message.conversation_ref_id):
            author = message.sender.get("name") or message.sender["id"]
            yield TimelineEntry(message.received_at, "chat", str(author), message.text)


def _salesbot_answers(
    store: SandboxStore, lead_id: int, salesbot: SalesbotRecord
) -> Iterator[TimelineEntry]:
    for run in store.salesbot_runs_of(lead_id):
        answer = salesbot.continues.get((run.bot_id, run.continue_id))
        if answer is None:
            continue
        for handler in answer.execute_handlers:
            if handler["handler"] == "show":
                yield TimelineEntry(
                    answer.received_at, "salesbot", "Salesbot", str(handler["params"]["value"])
                )
