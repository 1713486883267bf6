"""What every reply channel provides: finding an earlier attempt's reply, and sending."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from agent_platform.crm.models import CrmDelivery


@dataclass(frozen=True, slots=True)
class SentReply:
    """Kommo's id of what was sent: a number (a note) or a string (a chat message)."""

    external_id: int | None = None
    external_ref: str | None = None


class ReplySender(Protocol):
    async def find_sent(self, delivery: CrmDelivery) -> SentReply | None:
        """The reply an earlier attempt delivered, when Kommo can show it; else None."""

    async def send(self, delivery: CrmDelivery, *, may_have_been_sent: bool) -> SentReply:
        """Send the stored reply. `may_have_been_sent`: an earlier attempt may have reached
        Kommo, and find_sent could not tell."""


class UndeliverableReplyError(ValueError):
    """The reply has no way to the customer (settings or data are missing): retrying cannot
    help, so the job fails at once and the inbox says why."""
