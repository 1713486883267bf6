"""The reply gate: every check in its place, the first that objects deciding.

Each case sets up conditions for two or more checks at once, so that the order is what the
assertion pins: stopped lead, pauses, handoff rules, working hours, daily cap, debounce.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent_platform.agent.runtime.debounce import PendingMessage
from agent_platform.agent.runtime.decisions import (
    Answer,
    HandOff,
    HandoffReason,
    ReplyDecision,
    SilenceReason,
    StaySilent,
    WaitReason,
    WaitUntil,
)
from agent_platform.agent.runtime.handoff import HandoffRules
from agent_platform.agent.runtime.reply_gate import (
    ConversationState,
    CustomerMessage,
    ReplyRules,
    decide_reply,
)
from agent_platform.agent.runtime.stages import ActiveStage, LeadStage, works_in
from agent_platform.agent.runtime.working_hours import OpeningInterval, OutsideHours, WorkingHours

BERLIN = ZoneInfo("Europe/Berlin")
NINE_TO_SIX = (OpeningInterval.parse("09:00", "18:00"),)
SALES_PIPELINE, NEW_LEAD, NEGOTIATION = 100, 1001, 1002
RULES = ReplyRules(
    active_stages=(ActiveStage(SALES_PIPELINE, NEW_LEAD), ActiveStage(SALES_PIPELINE + 1)),
    working_hours=WorkingHours(
        BERLIN,
        dict.fromkeys(("mon", "tue", "wed", "thu", "fri"), NINE_TO_SIX),
        outside_hours=OutsideHours.ANSWER_LATER,
    ),
    stop_words=("стоп", "unsubscribe"),
    handoff=HandoffRules(keywords=("оператор",), max_turns=20, pause_minutes=120),
    takeover_pause_minutes=60,
    debounce_seconds=10,
    max_replies_per_conversation_per_day=5,
)
MONDAY_NOON = datetime(2024, 6, 3, 12, tzinfo=BERLIN)
MONDAY_NIGHT = datetime(2024, 6, 3, 22, tzinfo=BERLIN)
TUESDAY_NINE = datetime(2024, 6, 4, 9, tzinfo=BERLIN)
QUIET = ConversationState(lead_stage=LeadStage(SALES_PIPELINE, NEW_LEAD), customer_turns=1)


def gate(
    text: str,
    now: datetime,
    state: ConversationState = QUIET,
    rules: ReplyRules = RULES,
    newer_message: bool = False,
) -> ReplyDecision:
    """The decision for message "m1", received 30 s before `now`."""
    pending = [PendingMessage("m1", now - timedelta(seconds=30))]
    if newer_message:
        pending.append(PendingMessage("m2", now - timedelta(seconds=20)))
    return decide_reply(rules, state, CustomerMessage("m1", text), pending, now)


def test_a_quiet_conversation_in_hours_is_answered() -> None:
    assert gate("Сколько стоит?", MONDAY_NOON) == Answer(("m1",))


def test_with_no_rules_set_the_agent_answers_any_time() -> None:
    assert gate("Сколько стоит?", MONDAY_NIGHT, rules=ReplyRules()) == Answer(("m1",))


def test_debounce_waits_for_the_customer_to_finish() -> None:
    just_now = MONDAY_NOON - timedelta(seconds=4)
    decision = decide_reply(
        RULES, QUIET, CustomerMessage("m1", "и ещё"), [PendingMessage("m1", just_now)], MONDAY_NOON
    )
    assert decision == WaitUntil(just_now + timedelta(seconds=10), WaitReason.DEBOUNCE)


HANDED_OFF = replace(QUIET, handed_off_at=MONDAY_NOON - timedelta(minutes=30))
MANAGER_WROTE = replace(QUIET, last_manager_message_at=MONDAY_NOON - timedelta(minutes=10))
CAP_REACHED = replace(QUIET, replies_today=5)


@pytest.mark.parametrize(
    ("text", "now", "state", "expected"),
    [
        pytest.param(
            "Стоп! Позовите оператор",
            MONDAY_NOON,
            replace(QUIET, lead_stage=LeadStage(SALES_PIPELINE, NEGOTIATION)),
            StaySilent(SilenceReason.INACTIVE_STAGE),
            id="a lead outside the agent's stages is not its to answer",
        ),
        pytest.param(
            "Стоп! Позовите оператор",
            MONDAY_NIGHT,
            replace(HANDED_OFF, replies_today=5),
            StaySilent(SilenceReason.STOP_WORD, matched=("стоп",)),
            id="a stop word ends it, whatever else holds",
        ),
        pytest.param(
            "оператор",
            MONDAY_NOON,
            replace(MANAGER_WROTE, stopped=True),
            StaySilent(SilenceReason.LEAD_STOPPED),
            id="a stopped lead stays stopped",
        ),
        pytest.param(
            "оператор",
            MONDAY_NOON,
            replace(HANDED_OFF, last_manager_message_at=MONDAY_NOON),
            StaySilent(SilenceReason.HANDED_OFF, until=MONDAY_NOON + timedelta(minutes=90)),
            id="a handoff pause comes before the takeover and the keyword",
        ),
        pytest.param(
            "оператор",
            MONDAY_NOON,
            MANAGER_WROTE,
            StaySilent(SilenceReason.MANAGER_TOOK_OVER, until=MONDAY_NOON + timedelta(minutes=50)),
            id="while a manager talks, no handoff is started",
        ),
        pytest.param(
            "Позовите оператор, пожалуйста",
            MONDAY_NIGHT,
            CAP_REACHED,
            HandOff(HandoffReason.KEYWORD, matched="оператор"),
            id="a customer asking for a person is handed off at night and past the cap",
        ),
        pytest.param(
            "Сколько стоит?",
            MONDAY_NOON,
            replace(QUIET, customer_turns=21),
            HandOff(HandoffReason.MAX_TURNS),
            id="too many turns",
        ),
        pytest.param(
            "Сколько стоит?",
            MONDAY_NIGHT,
            CAP_REACHED,
            WaitUntil(TUESDAY_NINE, WaitReason.WORKING_HOURS),
            id="outside hours, answer at the opening, before the cap is looked at",
        ),
        pytest.param(
            "Сколько стоит?",
            MONDAY_NOON,
            CAP_REACHED,
            StaySilent(SilenceReason.DAILY_REPLY_CAP),
            id="the daily cap",
        ),
    ],
)
def test_the_first_check_that_objects_decides(
    text: str, now: datetime, state: ConversationState, expected: ReplyDecision
) -> None:
    assert gate(text, now, state, newer_message=True) == expected


def test_pauses_end_and_the_agent_answers_again() -> None:
    three_hours_on = MONDAY_NOON + timedelta(hours=3)
    assert gate("Ну что?", three_hours_on, HANDED_OFF) == Answer(("m1",))
    assert gate("Ну что?", MONDAY_NOON + timedelta(minutes=51), MANAGER_WROTE) == Answer(("m1",))


def test_a_handoff_until_resumed_lasts() -> None:
    until_resumed = replace(RULES, handoff=replace(RULES.handoff, pause_minutes=None))
    a_week_on = MONDAY_NOON + timedelta(weeks=1)
    assert gate("Ну что?", a_week_on, HANDED_OFF, rules=until_resumed) == StaySilent(
        SilenceReason.HANDED_OFF
    )


def test_a_pause_given_an_end_lasts_until_then_whatever_the_handoff_settings() -> None:
    # An automation's "pause the agent for 5 hours", with a handoff pause of 2 hours set.
    ends = MONDAY_NOON + timedelta(hours=5)
    paused = replace(HANDED_OFF, paused_until=ends)
    assert gate("Ну что?", MONDAY_NOON + timedelta(hours=3), paused) == StaySilent(
        SilenceReason.HANDED_OFF, until=ends
    )
    assert gate("Ну что?", ends + timedelta(minutes=1), paused) == Answer(("m1",))


def test_an_older_message_stands_down_for_a_newer_one() -> None:
    assert gate("Сколько стоит?", MONDAY_NOON, newer_message=True) == StaySilent(
        SilenceReason.SUPERSEDED
    )


def test_the_stages_an_agent_works_in() -> None:
    whole_pipeline = (ActiveStage(SALES_PIPELINE + 1),)
    assert works_in(whole_pipeline, LeadStage(SALES_PIPELINE + 1, NEGOTIATION))
    assert not works_in(whole_pipeline, LeadStage(SALES_PIPELINE, NEGOTIATION))
    assert works_in((), LeadStage(SALES_PIPELINE, NEGOTIATION))
    assert works_in(RULES.active_stages, LeadStage(SALES_PIPELINE, NEW_LEAD))


def test_a_conversation_without_a_lead_is_answered() -> None:
    assert gate("Сколько стоит?", MONDAY_NOON, replace(QUIET, lead_stage=None)) == Answer(("m1",))
