"""The agent forms as the browser posts them, read into the API's schemas and shown back.

A form's fields are named after where the schema keeps a setting (`handoff.max_turns`), so a
validation error's location names the field it is shown under. Values pass to the schema as
typed; the schema alone decides what is valid, as it does for the REST API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, get_args

from pydantic import ValidationError

from agent_platform.agent.schemas import AgentSettings, OutsideHours, Tool, Weekday

WEEKDAYS: tuple[str, ...] = get_args(Weekday)
TOOLS: tuple[str, ...] = get_args(Tool)
OUTSIDE_HOURS: tuple[str, ...] = get_args(OutsideHours)
# Where an error that names no single field of a form is shown.
FORM_ERROR = "form"

MAIN_FIELDS = ("name", "instructions", "model")
ADVANCED_FIELDS = (
    "language",
    "tone",
    "temperature",
    "max_tokens",
    "fallback_models",
    "tools",
    "stop_words",
    "takeover_pause_minutes",
    "debounce_seconds",
    "max_replies_per_conversation_per_day",
    "working_hours",
    "handoff",
)
# The advanced form's inputs, each a place in the settings (errors are shown under them).
ADVANCED_INPUTS = (
    *ADVANCED_FIELDS,
    "working_hours.timezone",
    *(f"working_hours.weekly.{day}" for day in WEEKDAYS),
    "working_hours.holidays",
    "working_hours.outside_hours",
    "working_hours.out_of_hours_message",
    "handoff.keywords",
    "handoff.max_turns",
    "handoff.on_llm_request",
    "handoff.max_consecutive_errors",
    "handoff.responsible_user_id",
    "handoff.task_text",
    "handoff.pause_minutes",
)
WORKING_HOURS_ON = "working_hours.enabled"
CHECKED = "on"

FormValues = dict[str, Any]
FieldErrors = dict[str, list[str]]


def field_errors(error: ValidationError, inputs: Iterable[str]) -> FieldErrors:
    """The schema's messages by the form input they concern: the input named by the longest
    start of the error's location, else the form as a whole."""
    known = set(inputs)
    found: FieldErrors = {}
    for problem in error.errors():
        location = [str(part) for part in problem["loc"]]
        place = FORM_ERROR
        for length in range(len(location), 0, -1):
            candidate = ".".join(location[:length])
            if candidate in known:
                place = candidate
                break
        message = str(problem["msg"]).removeprefix("Value error, ")
        found.setdefault(place, []).append(message)
    return found


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _optional(text: str) -> str | None:
    """An empty number field is "no limit" (null)."""
    return text.strip() or None


def _intervals(text: str) -> list[list[str]]:
    """'09:00-13:00, 14:00-18:00' as [["09:00", "13:00"], ["14:00", "18:00"]]; a piece that
    is not two times is passed on as it is, for the schema to refuse."""
    pieces = [piece.strip() for piece in text.split(",") if piece.strip()]
    return [[part.strip() for part in piece.replace("–", "-").split("-")] for piece in pieces]


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def main_settings(form: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _text(form, name) for name in MAIN_FIELDS}


def advanced_settings(form: Mapping[str, Any], tools: list[str]) -> dict[str, Any]:
    """The advanced form as the settings it sets (`tools`: the boxes ticked)."""
    working_hours: dict[str, Any] | None = None
    if _text(form, WORKING_HOURS_ON) == CHECKED:
        weekly = {
            day: _intervals(_text(form, f"working_hours.weekly.{day}"))
            for day in WEEKDAYS
            if _text(form, f"working_hours.weekly.{day}").strip()
        }
        working_hours = {
            "timezone": _text(form, "working_hours.timezone").strip(),
            "weekly": weekly,
            "holidays": _lines(_text(form, "working_hours.holidays")),
            "outside_hours": _text(form, "working_hours.outside_hours"),
            "out_of_hours_message": _text(form, "working_hours.out_of_hours_message").strip()
            or None,
        }
    return {
        "language": _text(form, "language").strip(),
        "tone": _text(form, "tone").strip(),
        "temperature": _text(form, "temperature").strip(),
        "max_tokens": _optional(_text(form, "max_tokens")),
        "fallback_models": _lines(_text(form, "fallback_models")),
        "tools": tools,
        "stop_words": _lines(_text(form, "stop_words")),
        "takeover_pause_minutes": _text(form, "takeover_pause_minutes").strip(),
        "debounce_seconds": _text(form, "debounce_seconds").strip(),
        "max_replies_per_conversation_per_day": _optional(
            _text(form, "max_replies_per_conversation_per_day")
        ),
        "working_hours": working_hours,
        "handoff": {
            "keywords": _lines(_text(form, "handoff.keywords")),
            "max_turns": _optional(_text(form, "handoff.max_turns")),
            "on_llm_request": _text(form, "handoff.on_llm_request") == CHECKED,
            "max_consecutive_errors": _optional(_text(form, "handoff.max_consecutive_errors")),
            "responsible_user_id": _optional(_text(form, "handoff.responsible_user_id")),
            "task_text": _text(form, "handoff.task_text").strip(),
            "pause_minutes": _optional(_text(form, "handoff.pause_minutes")),
        },
    }


def _number(value: object) -> str:
    return "" if value is None else str(value)


def advanced_values(settings: AgentSettings) -> FormValues:
    """The advanced form filled with `settings`, as advanced_settings reads it back."""
    hours = settings.working_hours
    handoff = settings.handoff
    values: FormValues = {
        "language": settings.language,
        "tone": settings.tone,
        "temperature": _number(settings.temperature),
        "max_tokens": _number(settings.max_tokens),
        "fallback_models": "\n".join(settings.fallback_models),
        "tools": list(settings.tools),
        "stop_words": "\n".join(settings.stop_words),
        "takeover_pause_minutes": _number(settings.takeover_pause_minutes),
        "debounce_seconds": _number(settings.debounce_seconds),
        "max_replies_per_conversation_per_day": _number(
            settings.max_replies_per_conversation_per_day
        ),
        WORKING_HOURS_ON: CHECKED if hours else "",
        "working_hours.timezone": hours.timezone if hours else "",
        "working_hours.holidays": "\n".join(day.isoformat() for day in hours.holidays)
        if hours
        else "",
        "working_hours.outside_hours": hours.outside_hours if hours else "answer_later",
        "working_hours.out_of_hours_message": (hours.out_of_hours_message or "") if hours else "",
        "handoff.keywords": "\n".join(handoff.keywords),
        "handoff.max_turns": _number(handoff.max_turns),
        "handoff.on_llm_request": CHECKED if handoff.on_llm_request else "",
        "handoff.max_consecutive_errors": _number(handoff.max_consecutive_errors),
        "handoff.responsible_user_id": _number(handoff.responsible_user_id),
        "handoff.task_text": handoff.task_text,
        "handoff.pause_minutes": _number(handoff.pause_minutes),
    }
    weekly = {str(day): intervals for day, intervals in hours.weekly.items()} if hours else {}
    for day in WEEKDAYS:
        values[f"working_hours.weekly.{day}"] = ", ".join(
            f"{start}-{end}" for start, end in weekly.get(day, [])
        )
    return values


def posted_values(form: Mapping[str, Any], tools: list[str]) -> FormValues:
    """The advanced form as posted, to show it again with its errors."""
    values: FormValues = {name: _text(form, name) for name in ADVANCED_INPUTS}
    values[WORKING_HOURS_ON] = _text(form, WORKING_HOURS_ON)
    values["tools"] = tools
    return values


def changed(wanted: Mapping[str, Any], current: AgentSettings) -> dict[str, Any]:
    """Those of the `wanted` settings (validated, as JSON values) that differ from `current`."""
    stored = current.model_dump(mode="json")
    return {name: value for name, value in wanted.items() if stored.get(name) != value}
