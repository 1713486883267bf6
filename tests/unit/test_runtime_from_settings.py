"""The runtime's rules read from settings as the API stores them (the shared JSON shape)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.handoff import HandoffRules
from agent_platform.agent.runtime.reply_gate import ReplyRules
from agent_platform.agent.runtime.stages import ActiveStage
from agent_platform.agent.runtime.working_hours import OpeningInterval, OutsideHours, WorkingHours
from agent_platform.agent.schemas import AgentSettings


def test_every_behaviour_setting_reaches_the_runtime() -> None:
    settings = AgentSettings.model_validate(
        {
            "name": "Sales",
            "model": "openai/gpt-4o-mini",
            "working_hours": {
                "timezone": "Europe/Moscow",
                "weekly": {"mon": [["09:00", "13:00"], ["14:00", "24:00"]]},
                "holidays": ["2025-01-01"],
                "outside_hours": "out_of_hours_message",
                "out_of_hours_message": "Ответим утром.",
            },
            "stop_words": ["стоп"],
            "handoff": {
                "keywords": ["оператор"],
                "max_turns": 30,
                "on_llm_request": False,
                "max_consecutive_errors": 3,
                "responsible_user_id": 7,
                "task_text": "Перезвонить",
                "pause_minutes": None,
            },
            "takeover_pause_minutes": 90,
            "debounce_seconds": 15,
            "max_replies_per_conversation_per_day": 40,
            "active_stages": [{"pipeline_id": 1, "status_id": 2}, {"pipeline_id": 3}],
        }
    )
    assert reply_rules(settings) == ReplyRules(
        active_stages=(ActiveStage(1, 2), ActiveStage(3, None)),
        working_hours=WorkingHours(
            timezone=ZoneInfo("Europe/Moscow"),
            weekly={"mon": (OpeningInterval(9 * 60, 13 * 60), OpeningInterval(14 * 60, 24 * 60))},
            holidays=frozenset({date(2025, 1, 1)}),
            outside_hours=OutsideHours.OUT_OF_HOURS_MESSAGE,
            out_of_hours_message="Ответим утром.",
        ),
        stop_words=("стоп",),
        handoff=HandoffRules(
            keywords=("оператор",),
            max_turns=30,
            on_llm_request=False,
            max_consecutive_errors=3,
            responsible_user_id=7,
            task_text="Перезвонить",
            pause_minutes=None,
        ),
        takeover_pause_minutes=90,
        debounce_seconds=15,
        max_replies_per_conversation_per_day=40,
    )


def test_defaults_mean_always_open_and_no_limits() -> None:
    rules = reply_rules(AgentSettings.model_validate({"name": "Sales", "model": "m"}))
    assert rules.working_hours is None
    assert rules.active_stages == ()
    assert rules.max_replies_per_conversation_per_day is None
