"""When a sequence's step runs: its delay, and the instant that delay comes to.

A delay is relative (`{"after_minutes": 1440}`: a day after the previous step or the
enrollment) or a time of day (`{"at": "10:00", "after_minutes": 60, "within_working_hours":
true}`: the first 10:00 in the organization's zone at least an hour on, moved to the next
opening of the agent's working hours when that instant falls outside them). Minutes are
elapsed time, so a clock change does not stretch or shrink them; a time of day is read on the
wall clock, as a team reads its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.working_hours import WorkingHours, is_open, next_opening
from agent_platform.agent.runtime.zone_clock import first_instant_showing, require_aware
from agent_platform.automation.engine import RuleError

# A year: a longer pause between two messages to a lead is not a follow-up any more.
MAX_DELAY_MINUTES = 525_600
_TIME_OF_DAY = re.compile(r"(?P<hours>[01]\d|2[0-3]):(?P<minutes>[0-5]\d)")
_KEYS = frozenset({"after_minutes", "at", "within_working_hours"})


@dataclass(frozen=True)
class Delay:
    after_minutes: int = 0
    at: time | None = None
    within_working_hours: bool = False

    def to_json(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"after_minutes": self.after_minutes}
        if self.at is not None:
            stored["at"] = self.at.strftime("%H:%M")
        if self.within_working_hours:
            stored["within_working_hours"] = True
        return stored


def parse_delay(raw: object, path: str) -> Delay:
    """A step's delay from its JSON; RuleError (with the offending key's path) otherwise."""
    if not isinstance(raw, dict):
        raise RuleError('a delay is an object: {"after_minutes": n} or {"at": "HH:MM", ...}', path)
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise RuleError(
            f"unknown key {unknown[0]!r}; a delay has after_minutes, at, within_working_hours",
            f"{path}.{unknown[0]}",
        )
    if "after_minutes" not in raw and "at" not in raw:
        raise RuleError('a delay needs "after_minutes" or "at"', path)
    after_minutes = raw.get("after_minutes", 0)
    if (
        not isinstance(after_minutes, int)
        or isinstance(after_minutes, bool)
        or not 0 <= after_minutes <= MAX_DELAY_MINUTES
    ):
        raise RuleError(
            f"after_minutes is a whole number of minutes from 0 to {MAX_DELAY_MINUTES}",
            f"{path}.after_minutes",
        )
    at = raw.get("at")
    time_of_day = None
    if at is not None:
        match = _TIME_OF_DAY.fullmatch(at) if isinstance(at, str) else None
        if match is None:
            raise RuleError(f"{at!r} is not a time of day as HH:MM (00:00-23:59)", f"{path}.at")
        time_of_day = time(int(match["hours"]), int(match["minutes"]))
    within_working_hours = raw.get("within_working_hours", False)
    if not isinstance(within_working_hours, bool):
        raise RuleError("within_working_hours is true or false", f"{path}.within_working_hours")
    return Delay(after_minutes, time_of_day, within_working_hours)


def next_run_at(
    delay: Delay, *, after: datetime, zone: ZoneInfo, working_hours: WorkingHours | None
) -> datetime:
    """The instant (UTC) a step with `delay` runs, counted from `after`.

    Working hours that never open again do not hold the step back forever: it runs at the
    time the delay alone gives."""
    earliest = require_aware(after) + timedelta(minutes=delay.after_minutes)
    when = earliest if delay.at is None else _next_time_of_day(delay.at, earliest, zone)
    if (
        delay.within_working_hours
        and working_hours is not None
        and not is_open(working_hours, when)
    ):
        opening = next_opening(working_hours, when)
        if opening is not None:
            return opening
    return when.astimezone(UTC)


def _next_time_of_day(at: time, earliest: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at or after `earliest` when the clock in `zone` shows `at` (or, on
    the day clocks go forward past it, the instant they jump)."""
    day = earliest.astimezone(zone).date()
    candidate = first_instant_showing(zone, datetime.combine(day, at))
    if candidate < earliest:
        candidate = first_instant_showing(zone, datetime.combine(day + timedelta(days=1), at))
    return candidate
