"""What the reply flow is told to do about a customer's message: one typed value per outcome.

Every check (the lead's stage, stop words, pauses, handoff rules, working hours, the daily
cap, debounce) answers with one of these, so the reply gate can chain them and the caller
handles a single union.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class SilenceReason(StrEnum):
    INACTIVE_STAGE = "inactive_stage"
    """The lead is in a stage the agent does not work in."""
    STOP_WORD = "stop_word"
    """This message holds a stop word: the caller records that the agent's part is over."""
    LEAD_STOPPED = "lead_stopped"
    """An earlier message held a stop word."""
    HANDED_OFF = "handed_off"
    MANAGER_TOOK_OVER = "manager_took_over"
    OUTSIDE_WORKING_HOURS = "outside_working_hours"
    NO_OPENING_AHEAD = "no_opening_ahead"
    """The agent would answer at the next opening, but the schedule has none."""
    OUT_OF_HOURS_MESSAGE_ALREADY_SENT = "out_of_hours_message_already_sent"
    DAILY_REPLY_CAP = "daily_reply_cap"
    SUPERSEDED = "superseded"
    """A newer customer message is pending: its reply will answer this one too."""
    ALREADY_ANSWERED = "already_answered"
    """The message is no longer pending: a reply covering it has been given."""


class WaitReason(StrEnum):
    DEBOUNCE = "debounce"
    WORKING_HOURS = "working_hours"


class HandoffReason(StrEnum):
    KEYWORD = "keyword"
    LLM_REQUEST = "llm_request"
    CONSECUTIVE_ERRORS = "consecutive_errors"
    MAX_TURNS = "max_turns"


@dataclass(frozen=True)
class Answer:
    """Reply now, to these pending messages together (oldest first)."""

    message_ids: tuple[str, ...]


@dataclass(frozen=True)
class WaitUntil:
    """Decide again at `at`."""

    at: datetime
    reason: WaitReason


@dataclass(frozen=True)
class SendOutOfHoursMessage:
    text: str


@dataclass(frozen=True)
class StaySilent:
    reason: SilenceReason
    until: datetime | None = None
    """When a pause ends, for pauses that end; None otherwise."""
    matched: tuple[str, ...] = ()
    """The stop words found, for SilenceReason.STOP_WORD."""


@dataclass(frozen=True)
class HandOff:
    """Give the conversation to a person: the caller applies the agent's handoff settings."""

    reason: HandoffReason
    matched: str | None = None
    """The keyword found, for HandoffReason.KEYWORD."""


ReplyDecision = Answer | WaitUntil | SendOutOfHoursMessage | StaySilent | HandOff
