"""The reply gate: whether, when and how the agent answers a customer's message.

Checks run in this order and the first that objects decides:
1. the lead's stage: outside its active stages the lead is not the agent's to answer;
2. stopped lead: this message or an earlier one holds a stop word;
3. pauses: a handoff's pause, then a manager's takeover;
4. handoff rules (keywords, errors, turns): a customer asking for a person is handed over
   even at night or past the daily cap, since a person answers them;
5. working hours: answer later, the out-of-hours message, or silence;
6. the daily cap on replies in this conversation;
7. debounce: wait for the customer to finish, or answer the burst.
The stage, stopping and pauses come first because after them the agent must not act at
all, not even hand off again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from agent_platform.agent.runtime.after_hours import after_hours_decision
from agent_platform.agent.runtime.daily_cap import under_daily_cap
from agent_platform.agent.runtime.debounce import PendingMessage, debounce
from agent_platform.agent.runtime.decisions import ReplyDecision, SilenceReason, StaySilent
from agent_platform.agent.runtime.handoff import HandoffRules, decide_handoff, handoff_pause_end
from agent_platform.agent.runtime.phrases import matching_phrases
from agent_platform.agent.runtime.stages import ActiveStage, LeadStage, works_in
from agent_platform.agent.runtime.takeover import (
    DEFAULT_TAKEOVER_PAUSE_MINUTES,
    takeover_paused_until,
)
from agent_platform.agent.runtime.working_hours import WorkingHours


@dataclass(frozen=True)
class ReplyRules:
    """The agent's settings that decide whether and when it replies."""

    active_stages: tuple[ActiveStage, ...] = ()
    """Empty = every stage."""
    working_hours: WorkingHours | None = None
    """None = always open."""
    stop_words: tuple[str, ...] = ()
    handoff: HandoffRules = field(default_factory=HandoffRules)
    takeover_pause_minutes: int = DEFAULT_TAKEOVER_PAUSE_MINUTES
    debounce_seconds: int = 0
    max_replies_per_conversation_per_day: int | None = None


@dataclass(frozen=True)
class ConversationState:
    """What the conversation's history says, as the caller read it for this decision."""

    lead_stage: LeadStage | None = None
    """None when the conversation has no CRM lead (the chat API)."""
    stopped: bool = False
    handed_off_at: datetime | None = None
    """When the current handoff began; None when not handed off (or since resumed)."""
    paused_until: datetime | None = None
    """When the handoff's pause ends, if it was given an end (a timed pause by automation);
    None: the agent's handoff settings say."""
    last_manager_message_at: datetime | None = None
    customer_turns: int = 0
    """The customer's messages, this one included."""
    consecutive_errors: int = 0
    replies_today: int = 0
    """The agent's replies since daily_cap.day_start in the agent's time zone."""
    out_of_hours_message_sent_at: datetime | None = None


@dataclass(frozen=True)
class CustomerMessage:
    id: str
    text: str


def decide_reply(
    rules: ReplyRules,
    state: ConversationState,
    message: CustomerMessage,
    pending: Sequence[PendingMessage],
    now: datetime,
) -> ReplyDecision:
    """The decision for the reply job of `message`; `pending` lists the conversation's
    customer messages not answered yet."""
    return (
        _outside_active_stages(rules, state)
        or _stopped(rules, state, message)
        or _paused(rules, state, now)
        or decide_handoff(
            rules.handoff,
            customer_text=message.text,
            customer_turns=state.customer_turns,
            consecutive_errors=state.consecutive_errors,
        )
        or after_hours_decision(rules.working_hours, now, state.out_of_hours_message_sent_at)
        or _over_daily_cap(rules, state)
        or debounce(
            pending,
            replying_to=message.id,
            debounce_seconds=rules.debounce_seconds,
            now=now,
        )
    )


def _outside_active_stages(rules: ReplyRules, state: ConversationState) -> StaySilent | None:
    if state.lead_stage is None or works_in(rules.active_stages, state.lead_stage):
        return None
    return StaySilent(SilenceReason.INACTIVE_STAGE)


def _stopped(
    rules: ReplyRules, state: ConversationState, message: CustomerMessage
) -> StaySilent | None:
    if state.stopped:
        return StaySilent(SilenceReason.LEAD_STOPPED)
    stop_words = matching_phrases(message.text, rules.stop_words)
    if stop_words:
        return StaySilent(SilenceReason.STOP_WORD, matched=stop_words)
    return None


def _paused(rules: ReplyRules, state: ConversationState, now: datetime) -> StaySilent | None:
    if state.handed_off_at is not None:
        handoff_ends = state.paused_until or handoff_pause_end(rules.handoff, state.handed_off_at)
        if handoff_ends is None or now < handoff_ends:
            return StaySilent(SilenceReason.HANDED_OFF, until=handoff_ends)
    takeover_ends = takeover_paused_until(
        state.last_manager_message_at, rules.takeover_pause_minutes
    )
    if takeover_ends is not None and now < takeover_ends:
        return StaySilent(SilenceReason.MANAGER_TOOK_OVER, until=takeover_ends)
    return None


def _over_daily_cap(rules: ReplyRules, state: ConversationState) -> StaySilent | None:
    if under_daily_cap(state.replies_today, rules.max_replies_per_conversation_per_day):
        return None
    return StaySilent(SilenceReason.DAILY_REPLY_CAP)
