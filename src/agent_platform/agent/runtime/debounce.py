"""Debounce: wait for the customer to finish typing, then answer their messages together.

Every customer message starts a reply job. Only the job of the newest pending message
answers, once no message has arrived for `debounce_seconds`; the jobs of older messages
stand down, since the newest one's reply covers them. So a burst gets exactly one reply,
whatever order the jobs run in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent_platform.agent.runtime.decisions import (
    Answer,
    SilenceReason,
    StaySilent,
    WaitReason,
    WaitUntil,
)

DebounceDecision = Answer | WaitUntil | StaySilent


@dataclass(frozen=True)
class PendingMessage:
    """A customer message the agent has not answered yet."""

    id: str
    received_at: datetime


def debounce(
    pending: Iterable[PendingMessage], *, replying_to: str, debounce_seconds: int, now: datetime
) -> DebounceDecision:
    """What the job replying to the message `replying_to` does now."""
    burst = _in_arrival_order(pending)
    if replying_to not in (message.id for message in burst):
        return StaySilent(SilenceReason.ALREADY_ANSWERED)
    newest = burst[-1]
    if newest.id != replying_to:
        return StaySilent(SilenceReason.SUPERSEDED)
    quiet_from = newest.received_at + timedelta(seconds=debounce_seconds)
    if now < quiet_from:
        return WaitUntil(quiet_from, WaitReason.DEBOUNCE)
    return Answer(tuple(message.id for message in burst))


def _in_arrival_order(pending: Iterable[PendingMessage]) -> list[PendingMessage]:
    """Ordered by arrival, the id breaking ties so every job sees the same order; a message
    listed twice (a redelivered webhook) counts once, at its first arrival."""
    ordered = sorted(pending, key=lambda message: (message.received_at, message.id))
    seen: set[str] = set()
    unique: list[PendingMessage] = []
    for message in ordered:
        if message.id not in seen:
            seen.add(message.id)
            unique.append(message)
    return unique
