"""Agent settings as validated: what is accepted and how it is normalised (refusals are in
tests/integration/test_agents_api.py, through the API)."""

from __future__ import annotations

from agent_platform.agent.schemas import AgentPatch, WorkingHours


def test_intervals_may_touch_end_at_midnight_and_come_back_in_order() -> None:
    hours = WorkingHours.model_validate(
        {
            "timezone": "America/New_York",
            "weekly": {"fri": [["13:00", "24:00"], ["00:00", "02:00"], ["09:00", "13:00"]]},
        }
    )
    assert hours.weekly == {"fri": [("00:00", "02:00"), ("09:00", "13:00"), ("13:00", "24:00")]}


def test_a_day_left_out_is_closed_and_no_day_at_all_is_allowed() -> None:
    assert WorkingHours(timezone="UTC").weekly == {}


def test_a_patch_holds_only_the_settings_sent_and_null_clears_a_nullable_one() -> None:
    patch = AgentPatch.model_validate(
        {"max_tokens": None, "tools": ["handoff"], "status": "paused", "note": "why"}
    )
    assert patch.settings_changes() == {"max_tokens": None, "tools": ["handoff"]}
