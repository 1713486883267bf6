"""Handing a conversation to a person: the rules, their order, and the model's request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent_platform.agent.runtime.decisions import HandOff, HandoffReason
from agent_platform.agent.runtime.handoff import (
    HANDOFF_MARKER,
    HandoffRules,
    decide_handoff,
    handoff_pause_end,
    llm_asked_for_handoff,
    without_handoff_marker,
)
from agent_platform.agent.runtime.takeover import takeover_paused_until

RULES = HandoffRules(
    keywords=("оператор", "живой человек", "manager"),
    max_turns=10,
    on_llm_request=True,
    max_consecutive_errors=3,
    responsible_user_id=42,
    task_text="Call the customer back",
    pause_minutes=120,
)


def decide(
    text: str = "Сколько стоит доставка?", turns: int = 1, errors: int = 0, llm_asked: bool = False
) -> HandOff | None:
    return decide_handoff(
        RULES,
        customer_text=text,
        customer_turns=turns,
        consecutive_errors=errors,
        llm_asked=llm_asked,
    )


def test_no_rule_met_no_handoff() -> None:
    assert decide(turns=10, errors=2) is None


def test_a_customer_asking_for_a_person_is_handed_off_with_the_keyword() -> None:
    # Phrases match as written: another grammatical form is another phrase.
    assert decide("Позовите ЖИВОГО человека") is None
    assert decide("Дайте живой человек, пожалуйста!") == HandOff(
        HandoffReason.KEYWORD, matched="живой человек"
    )


def test_each_rule_gives_its_reason() -> None:
    assert decide(llm_asked=True) == HandOff(HandoffReason.LLM_REQUEST)
    assert decide(errors=3) == HandOff(HandoffReason.CONSECUTIVE_ERRORS)
    assert decide(turns=11) == HandOff(HandoffReason.MAX_TURNS)


def test_the_first_reason_wins_keyword_then_model_then_errors_then_turns() -> None:
    assert decide("manager please", turns=99, errors=9, llm_asked=True) == HandOff(
        HandoffReason.KEYWORD, matched="manager"
    )
    assert decide(turns=99, errors=9, llm_asked=True) == HandOff(HandoffReason.LLM_REQUEST)
    assert decide(turns=99, errors=9) == HandOff(HandoffReason.CONSECUTIVE_ERRORS)


def test_unset_limits_and_a_declined_model_request_never_hand_off() -> None:
    lenient = HandoffRules(on_llm_request=False)
    assert (
        decide_handoff(
            lenient,
            customer_text="hi",
            customer_turns=10_000,
            consecutive_errors=10_000,
            llm_asked=True,
        )
        is None
    )


def test_the_model_asks_by_the_handoff_tool_or_the_marker() -> None:
    assert llm_asked_for_handoff(["add_tag", "handoff"], "")
    assert llm_asked_for_handoff([], f"  {HANDOFF_MARKER} Передаю менеджеру.")
    assert not llm_asked_for_handoff(["create_task"], f"I could write {HANDOFF_MARKER} here")


def test_the_customer_never_sees_the_marker() -> None:
    assert without_handoff_marker(f"{HANDOFF_MARKER}  Передаю менеджеру.") == "Передаю менеджеру."
    assert without_handoff_marker("Hello") == "Hello"


def test_pauses_after_a_handoff_and_after_a_manager_writes() -> None:
    at = datetime(2024, 6, 3, 12, tzinfo=UTC)
    assert handoff_pause_end(RULES, at) == at + timedelta(minutes=120)
    assert handoff_pause_end(HandoffRules(pause_minutes=None), at) is None
    assert takeover_paused_until(at, 60) == at + timedelta(hours=1)
    assert takeover_paused_until(None, 60) is None
