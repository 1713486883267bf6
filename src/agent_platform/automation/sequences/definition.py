"""A sequence's definition: its steps and stop conditions, checked as the API accepts them and
stored in the checked form, and which event stops an enrollment, and why.

Steps: `[{"name": str?, "delay": {...}, "conditions": tree | null, "actions": [...]}]`;
stop conditions: `{"lead_replied": bool, "stages": [status ids], "won_or_lost": bool}`.
"""

from __future__ import annotations

from typing import Any

from agent_platform.automation.actions import action_json, parse_actions
from agent_platform.automation.delays import parse_delay
from agent_platform.automation.engine import RuleError, parse_condition
from agent_platform.automation.events import AutomationEvent, EventType

MAX_STEPS = 50
MAX_STEP_NAME = 200
MAX_STOP_STAGES = 100
# Kommo's fixed statuses of a closed lead, the same in every pipeline.
WON_STATUS_ID = 142
LOST_STATUS_ID = 143

_STEP_KEYS = frozenset({"name", "delay", "conditions", "actions"})
_STOP_ON_KEYS = frozenset({"lead_replied", "stages", "won_or_lost"})


def parse_steps(raw: object, *, allow_private_networks: bool) -> list[dict[str, Any]]:
    """The steps as stored; RuleError (path like "steps[1].actions[0].url") otherwise."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_STEPS:
        raise RuleError(f"steps are a list of 1 to {MAX_STEPS} steps", "steps")
    return [
        _parse_step(step, f"steps[{index}]", allow_private_networks)
        for index, step in enumerate(raw)
    ]


def _parse_step(raw: object, path: str, allow_private_networks: bool) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise RuleError('a step is an object: {"delay", "conditions", "actions"}', path)
    unknown = sorted(set(raw) - _STEP_KEYS)
    if unknown:
        raise RuleError(
            f"unknown key {unknown[0]!r}; a step has name, delay, conditions, actions",
            f"{path}.{unknown[0]}",
        )
    name = raw.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > MAX_STEP_NAME):
        raise RuleError(f"a step's name is text of at most {MAX_STEP_NAME} characters", path)
    if "delay" not in raw:
        raise RuleError('a step needs a delay, e.g. {"after_minutes": 0} to run at once', path)
    delay = parse_delay(raw["delay"], f"{path}.delay")
    conditions = raw.get("conditions")
    if conditions is not None:
        parse_condition(conditions, path=f"{path}.conditions")
    actions = parse_actions(
        raw.get("actions"),
        event_type=None,
        in_sequence=True,
        allow_private_networks=allow_private_networks,
        path=f"{path}.actions",
    )
    return {
        "name": name,
        "delay": delay.to_json(),
        "conditions": conditions,
        "actions": [action_json(action) for action in actions],
    }


def parse_stop_on(raw: object) -> dict[str, Any]:
    """The stop conditions as stored (every key present); None stops on nothing but a person."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RuleError(
            'stop_on is an object: {"lead_replied": bool, "stages": [ids], "won_or_lost": bool}',
            "stop_on",
        )
    unknown = sorted(set(raw) - _STOP_ON_KEYS)
    if unknown:
        raise RuleError(
            f"unknown key {unknown[0]!r}; stop_on has lead_replied, stages, won_or_lost",
            f"stop_on.{unknown[0]}",
        )
    for flag in ("lead_replied", "won_or_lost"):
        if not isinstance(raw.get(flag, False), bool):
            raise RuleError(f"{flag} is true or false", f"stop_on.{flag}")
    stages = raw.get("stages", [])
    if (
        not isinstance(stages, list)
        or len(stages) > MAX_STOP_STAGES
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in stages)
    ):
        raise RuleError(
            f"stages is a list of at most {MAX_STOP_STAGES} status ids (whole numbers ≥ 1)",
            "stop_on.stages",
        )
    return {
        "lead_replied": raw.get("lead_replied", False),
        "stages": sorted(set(stages)),
        "won_or_lost": raw.get("won_or_lost", False),
    }


def stop_reason(stop_on: dict[str, Any], event: AutomationEvent) -> str | None:
    """Why `event` stops an enrollment with these stop conditions; None when it does not."""
    if event.type is EventType.MESSAGE_INCOMING and stop_on.get("lead_replied"):
        return "the lead replied"
    if event.type is not EventType.LEAD_STATUS_CHANGED:
        return None
    status_id = event.data.get("to_status_id")
    if stop_on.get("won_or_lost") and status_id == WON_STATUS_ID:
        return "won"
    if stop_on.get("won_or_lost") and status_id == LOST_STATUS_ID:
        return "lost"
    if status_id is not None and status_id in stop_on.get("stages", ()):
        return f"moved to stage {status_id}"
    return None
