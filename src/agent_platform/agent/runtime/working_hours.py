"""An agent's working hours: when it is open, and when it next opens.

Hours are wall-clock times in the schedule's time zone, as a team reads its own clock: on the
day clocks go forward an opening at 02:30 (a time that does not exist) happens at the jump,
and on the day they go back an hour shown twice is open both times. Holidays are local dates.
An interval cannot cross midnight: a night shift is "22:00"-"24:00" and the next day's
"00:00"-"06:00", which join without a gap.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.zone_clock import OffsetSpan, offset_spans, require_aware

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = get_args(Weekday)  # in date.weekday() order

MINUTES_PER_DAY = 24 * 60
_CLOCK_TIME = re.compile(r"(?P<hours>[01]\d|2[0-4]):(?P<minutes>[0-5]\d)")
# Once past the last holiday, two weeks hold every weekday twice: an open weekday shows up
# even if a clock change swallows one of its intervals. Further on nothing changes.
_SEARCH_PAST_HOLIDAYS = timedelta(days=14)


class OutsideHours(StrEnum):
    ANSWER_LATER = "answer_later"
    OUT_OF_HOURS_MESSAGE = "out_of_hours_message"
    SILENT = "silent"


@dataclass(frozen=True)
class OpeningInterval:
    """[start, end) in minutes since local midnight; end may be 1440 ("24:00")."""

    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_minute < self.end_minute <= MINUTES_PER_DAY:
            raise ValueError(
                f"an opening interval needs 00:00 <= start < end <= 24:00, "
                f"got {_clock(self.start_minute)}-{_clock(self.end_minute)}"
            )

    @classmethod
    def parse(cls, start: str, end: str) -> OpeningInterval:
        """From "HH:MM" strings, as stored in the settings ("09:00", "24:00")."""
        return cls(_minutes(start), _minutes(end))

    def opens_on(self, day: date) -> datetime:
        return datetime.combine(day, time.min) + timedelta(minutes=self.start_minute)

    def closes_on(self, day: date) -> datetime:
        return datetime.combine(day, time.min) + timedelta(minutes=self.end_minute)


@dataclass(frozen=True)
class WorkingHours:
    timezone: ZoneInfo
    weekly: Mapping[Weekday, tuple[OpeningInterval, ...]]
    """A day's intervals; a missing day is closed."""
    holidays: frozenset[date] = frozenset()
    outside_hours: OutsideHours = OutsideHours.ANSWER_LATER
    out_of_hours_message: str | None = None

    def __post_init__(self) -> None:
        unknown = set(self.weekly) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"unknown weekdays {sorted(unknown)}; use {', '.join(WEEKDAYS)}")
        if self.outside_hours is OutsideHours.OUT_OF_HOURS_MESSAGE and not (
            self.out_of_hours_message and self.out_of_hours_message.strip()
        ):
            raise ValueError("outside_hours 'out_of_hours_message' needs the message's text")

    def intervals_on(self, day: date) -> tuple[OpeningInterval, ...]:
        if day in self.holidays:
            return ()
        return self.weekly.get(WEEKDAYS[day.weekday()], ())


def is_open(hours: WorkingHours, at: datetime) -> bool:
    wall = require_aware(at).astimezone(hours.timezone).replace(tzinfo=None)
    day = wall.date()
    return any(
        interval.opens_on(day) <= wall < interval.closes_on(day)
        for interval in hours.intervals_on(day)
    )


def next_opening(hours: WorkingHours, at: datetime) -> datetime | None:
    """The first instant (UTC) at or after `at` when the hours are open; `at` itself when open
    now; None when the schedule never opens again."""
    if not any(hours.weekly.values()):
        return None
    local_day = require_aware(at).astimezone(hours.timezone).date()
    give_up_after = max([local_day, *hours.holidays]) + _SEARCH_PAST_HOLIDAYS
    # Within a span the clock runs evenly, so the span's earliest open wall time is its
    # earliest open instant; spans come in time order, so the first span with one has it.
    spans = offset_spans(hours.timezone, at)
    span = next(spans)
    while span.wall(span.start).date() <= give_up_after:
        opening = _first_open_instant(hours, span)
        if opening is not None:
            return opening
        span = next(spans)
    return None


def _first_open_instant(hours: WorkingHours, span: OffsetSpan) -> datetime | None:
    span_from, span_to = span.wall(span.start), span.wall(span.end)
    openings: list[datetime] = []
    for day in _days(span_from.date(), span_to.date()):
        for interval in hours.intervals_on(day):
            opens = max(span_from, interval.opens_on(day))
            if opens < min(span_to, interval.closes_on(day)):
                openings.append(opens)
    return span.instant(min(openings)) if openings else None


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _minutes(clock: str) -> int:
    match = _CLOCK_TIME.fullmatch(clock)
    minutes = int(match["hours"]) * 60 + int(match["minutes"]) if match else None
    if minutes is None or minutes > MINUTES_PER_DAY:
        raise ValueError(f"{clock!r} is not a time of day as HH:MM, from 00:00 to 24:00")
    return minutes


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
