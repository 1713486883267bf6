"""Working hours on the team's wall clock, across time zones and daylight-saving changes.

The examples pin the cases a team notices (an opening on the day clocks jump, an hour shown
twice, a holiday that is already tomorrow in the team's zone); the properties compare
next_opening with a minute-by-minute scan of is_open around real clock changes of zones that
change at unusual times (at midnight, by half an hour, for Ramadan, at 02:45 local).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_platform.agent.runtime.after_hours import after_hours_decision
from agent_platform.agent.runtime.daily_cap import day_start, under_daily_cap
from agent_platform.agent.runtime.decisions import (
    SendOutOfHoursMessage,
    SilenceReason,
    StaySilent,
    WaitReason,
    WaitUntil,
)
from agent_platform.agent.runtime.working_hours import (
    WEEKDAYS,
    OpeningInterval,
    OutsideHours,
    WorkingHours,
    is_open,
    next_opening,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HAVANA = ZoneInfo("America/Havana")  # clocks change at midnight
ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "America/Havana",
    "America/Santiago",
    "America/Asuncion",
    "Australia/Lord_Howe",  # a half-hour change
    "Pacific/Chatham",  # +12:45/+13:45, changes at 02:45 local
    "Africa/Casablanca",  # an hour back for Ramadan
    "Asia/Kathmandu",
    "Europe/Moscow",
    "UTC",
]


def interval(start: str, end: str) -> OpeningInterval:
    return OpeningInterval.parse(start, end)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- is_open and next_opening: the cases a team notices --------------------------------


def test_open_within_an_interval_and_closed_at_its_end() -> None:
    hours = WorkingHours(BERLIN, {"mon": (interval("09:00", "18:00"),)})
    # Monday 2024-06-03; Berlin is UTC+2 in summer.
    assert not is_open(hours, utc(2024, 6, 3, 6, 59))
    assert is_open(hours, utc(2024, 6, 3, 7, 0))
    assert is_open(hours, utc(2024, 6, 3, 15, 59, 59))
    assert not is_open(hours, utc(2024, 6, 3, 16, 0))


def test_an_interval_ending_at_24_00_runs_to_midnight_and_joins_the_next_day() -> None:
    hours = WorkingHours(
        BERLIN, {"mon": (interval("22:00", "24:00"),), "tue": (interval("00:00", "06:00"),)}
    )
    assert is_open(hours, datetime(2024, 6, 3, 23, 59, 59, 999999, tzinfo=BERLIN))
    assert is_open(hours, datetime(2024, 6, 4, 0, 0, tzinfo=BERLIN))
    assert not is_open(hours, datetime(2024, 6, 4, 6, 0, tzinfo=BERLIN))
    closing_monday_only = WorkingHours(BERLIN, {"mon": (interval("22:00", "24:00"),)})
    assert not is_open(closing_monday_only, datetime(2024, 6, 4, 0, 0, tzinfo=BERLIN))


def test_a_nine_o_clock_opening_on_the_day_clocks_go_forward() -> None:
    hours = WorkingHours(BERLIN, {"sun": (interval("09:00", "12:00"),)})
    saturday_evening = datetime(2024, 3, 30, 20, 0, tzinfo=BERLIN)
    # 09:00 on 2024-03-31 is summer time already: UTC+2.
    assert next_opening(hours, saturday_evening) == utc(2024, 3, 31, 7, 0)


def test_an_opening_inside_the_skipped_hour_happens_at_the_jump() -> None:
    hours = WorkingHours(BERLIN, {"sun": (interval("02:30", "04:00"),)})
    jump = utc(2024, 3, 31, 1, 0)  # 02:00 CET becomes 03:00 CEST
    assert next_opening(hours, utc(2024, 3, 30, 23, 0)) == jump
    assert is_open(hours, jump)
    assert not is_open(hours, jump - timedelta(microseconds=1))


def test_an_interval_wholly_inside_the_skipped_hour_does_not_happen_that_day() -> None:
    hours = WorkingHours(BERLIN, {"sun": (interval("02:00", "02:30"),)})
    # The next Sunday's 02:00, in summer time (UTC+2).
    assert next_opening(hours, utc(2024, 3, 30, 23, 0)) == utc(2024, 4, 7, 0, 0)


def test_an_hour_shown_twice_is_open_both_times() -> None:
    hours = WorkingHours(NEW_YORK, {"sun": (interval("01:30", "01:45"),)})
    first = utc(2024, 11, 3, 5, 30)  # 01:30 EDT
    second = utc(2024, 11, 3, 6, 30)  # 01:30 EST, an hour later
    assert is_open(hours, first)
    assert not is_open(hours, first + timedelta(minutes=20))
    assert next_opening(hours, first + timedelta(minutes=20)) == second


def test_clocks_going_forward_at_midnight_open_the_day_at_the_jump() -> None:
    hours = WorkingHours(HAVANA, {"sun": (interval("00:00", "08:00"),)})
    # Havana skips 2024-03-10 00:00-01:00: the day begins at 01:00 CDT, 05:00 UTC.
    assert next_opening(hours, datetime(2024, 3, 9, 23, 0, tzinfo=HAVANA)) == utc(2024, 3, 10, 5)


def test_a_holiday_is_a_local_date() -> None:
    auckland = ZoneInfo("Pacific/Auckland")
    hours = WorkingHours(
        timezone=auckland,
        weekly={day: (interval("00:00", "24:00"),) for day in WEEKDAYS},
        holidays=frozenset({date(2024, 12, 25)}),
    )
    # Still the 24th in UTC, already Christmas Day in Auckland (UTC+13).
    assert not is_open(hours, utc(2024, 12, 24, 12, 0))
    assert next_opening(hours, utc(2024, 12, 24, 12, 0)) == utc(2024, 12, 25, 11, 0)


def test_holidays_push_the_next_opening_past_them() -> None:
    hours = WorkingHours(
        timezone=BERLIN,
        weekly={"mon": (interval("09:00", "10:00"),)},
        holidays=frozenset({date(2024, 6, 3), date(2024, 6, 10), date(2024, 6, 17)}),
    )
    assert next_opening(hours, utc(2024, 6, 1)) == utc(2024, 6, 24, 7, 0)


def test_next_opening_of_an_open_moment_is_that_moment() -> None:
    hours = WorkingHours(BERLIN, {"mon": (interval("09:00", "18:00"),)})
    now = datetime(2024, 6, 3, 12, 34, 56, 789, tzinfo=BERLIN)
    assert next_opening(hours, now) == now


def test_a_week_with_no_opening_has_no_next_opening() -> None:
    assert next_opening(WorkingHours(BERLIN, {}), utc(2024, 6, 1)) is None
    assert next_opening(WorkingHours(BERLIN, {"mon": (), "tue": ()}), utc(2024, 6, 1)) is None


def test_a_naive_datetime_is_refused() -> None:
    hours = WorkingHours(BERLIN, {"mon": (interval("09:00", "18:00"),)})
    with pytest.raises(ValueError, match="aware"):
        is_open(hours, datetime(2024, 6, 3, 12))
    with pytest.raises(ValueError, match="aware"):
        next_opening(hours, datetime(2024, 6, 3, 12))


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("18:00", "09:00"),
        ("09:00", "09:00"),
        ("24:00", "24:00"),
        ("9:00", "10:00"),
        ("09:00", "24:01"),
        ("09:60", "10:00"),
        ("noon", "13:00"),
    ],
)
def test_bad_intervals_are_refused(start: str, end: str) -> None:
    with pytest.raises(ValueError, match=r"HH:MM|start < end"):
        OpeningInterval.parse(start, end)


def test_unknown_weekdays_and_a_missing_out_of_hours_text_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown weekdays"):
        WorkingHours(timezone=BERLIN, weekly={"monday": ()})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="needs the message's text"):
        WorkingHours(
            timezone=BERLIN,
            weekly={},
            outside_hours=OutsideHours.OUT_OF_HOURS_MESSAGE,
            out_of_hours_message="  ",
        )


# --- properties around real clock changes -------------------------------------------------


@cache
def clock_changes(zone_name: str) -> tuple[datetime, ...]:
    """The hours (UTC) in 2023-2026 after which `zone_name`'s offset differs, found by an
    hourly scan, independently of the code under test."""
    zone = ZoneInfo(zone_name)
    hour = utc(2023, 1, 1)
    changes = []
    while hour.year < 2027:
        if (hour + timedelta(hours=1)).astimezone(zone).utcoffset() != hour.astimezone(
            zone
        ).utcoffset():
            changes.append(hour)
        hour += timedelta(hours=1)
    return tuple(changes) or (utc(2024, 6, 1),)


@st.composite
def opening_intervals(draw: st.DrawFn) -> OpeningInterval:
    # Quarter hours, so intervals often begin or end exactly where clocks jump.
    start = draw(st.integers(0, 95))
    end = draw(st.integers(start + 1, 96))
    return OpeningInterval(start * 15, end * 15)


@st.composite
def schedules_and_moments(draw: st.DrawFn) -> tuple[WorkingHours, datetime]:
    zone_name = draw(st.sampled_from(ZONES))
    change = draw(st.sampled_from(clock_changes(zone_name)))
    moment = change + timedelta(minutes=draw(st.integers(-4 * 24 * 60, 4 * 24 * 60)))
    weekly = draw(
        st.dictionaries(
            st.sampled_from(WEEKDAYS), st.lists(opening_intervals(), max_size=3).map(tuple)
        )
    )
    local_day = moment.astimezone(ZoneInfo(zone_name)).date()
    holidays = draw(st.frozensets(st.integers(-1, 9).map(lambda n: local_day + timedelta(days=n))))
    return WorkingHours(ZoneInfo(zone_name), weekly, holidays), moment


@settings(max_examples=200, deadline=None)
@given(schedules_and_moments())
def test_no_opening_is_skipped_a_minute_by_minute_scan_of_the_week_agrees(
    case: tuple[WorkingHours, datetime],
) -> None:
    hours, moment = case
    opening = next_opening(hours, moment)
    # Every interval edge and every clock change of these zones falls on a whole UTC minute,
    # so scanning whole minutes from a whole minute finds the first open instant exactly.
    week_end = moment + timedelta(weeks=1)
    first_open_minute = next(
        (
            minute
            for minute in (moment + timedelta(minutes=n) for n in range(7 * 24 * 60))
            if is_open(hours, minute)
        ),
        None,
    )
    if first_open_minute is None:
        assert opening is None or opening >= week_end
    else:
        assert opening == first_open_minute


@settings(max_examples=200, deadline=None)
@given(schedules_and_moments(), st.integers(0, 59_999_999))
def test_next_opening_is_open_and_never_earlier_than_asked(
    case: tuple[WorkingHours, datetime], microseconds: int
) -> None:
    hours, moment = case
    moment += timedelta(microseconds=microseconds)
    opening = next_opening(hours, moment)
    if opening is None:
        assert not any(hours.weekly.values())
    else:
        assert opening >= moment
        assert is_open(hours, opening)
        assert (opening == moment) == is_open(hours, moment)


# --- what to do outside hours -------------------------------------------------------------

MONDAY_NINE_TO_SIX = {"mon": (interval("09:00", "18:00"),)}
MONDAY_NIGHT = datetime(2024, 6, 3, 20, 0, tzinfo=BERLIN)


def test_inside_hours_or_without_hours_nothing_stands_in_the_way() -> None:
    hours = WorkingHours(BERLIN, MONDAY_NINE_TO_SIX, outside_hours=OutsideHours.SILENT)
    assert after_hours_decision(hours, datetime(2024, 6, 3, 10, tzinfo=BERLIN), None) is None
    assert after_hours_decision(None, MONDAY_NIGHT, None) is None


def test_answer_later_waits_for_the_next_opening() -> None:
    hours = WorkingHours(BERLIN, MONDAY_NINE_TO_SIX, outside_hours=OutsideHours.ANSWER_LATER)
    assert after_hours_decision(hours, MONDAY_NIGHT, None) == WaitUntil(
        datetime(2024, 6, 10, 9, tzinfo=BERLIN), WaitReason.WORKING_HOURS
    )
    never_open = WorkingHours(BERLIN, {}, outside_hours=OutsideHours.ANSWER_LATER)
    assert after_hours_decision(never_open, MONDAY_NIGHT, None) == StaySilent(
        SilenceReason.NO_OPENING_AHEAD
    )


def test_silent_outside_hours() -> None:
    hours = WorkingHours(BERLIN, MONDAY_NINE_TO_SIX, outside_hours=OutsideHours.SILENT)
    assert after_hours_decision(hours, MONDAY_NIGHT, None) == StaySilent(
        SilenceReason.OUTSIDE_WORKING_HOURS
    )


def test_the_out_of_hours_message_is_sent_once_per_closed_stretch() -> None:
    hours = WorkingHours(
        BERLIN,
        MONDAY_NINE_TO_SIX,
        outside_hours=OutsideHours.OUT_OF_HOURS_MESSAGE,
        out_of_hours_message="We are back on Monday at 9.",
    )
    told = SendOutOfHoursMessage("We are back on Monday at 9.")
    assert after_hours_decision(hours, MONDAY_NIGHT, None) == told
    later_that_night = MONDAY_NIGHT + timedelta(hours=3)
    assert after_hours_decision(hours, later_that_night, MONDAY_NIGHT) == StaySilent(
        SilenceReason.OUT_OF_HOURS_MESSAGE_ALREADY_SENT
    )
    next_monday_night = MONDAY_NIGHT + timedelta(weeks=1)
    assert after_hours_decision(hours, next_monday_night, MONDAY_NIGHT) == told


# --- the day of the daily cap -------------------------------------------------------------


def test_the_day_starts_at_local_midnight_and_at_the_jump_when_midnight_is_skipped() -> None:
    assert day_start(utc(2024, 6, 3, 22, 30), BERLIN) == utc(2024, 6, 3, 22, 0)
    assert day_start(utc(2024, 3, 10, 12), HAVANA) == utc(2024, 3, 10, 5)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(ZONES).flatmap(
        lambda name: st.tuples(
            st.just(ZoneInfo(name)),
            st.sampled_from(clock_changes(name)),
            st.integers(-3 * 24 * 60, 3 * 24 * 60),
        )
    )
)
def test_the_day_starts_at_the_first_instant_of_the_local_date(
    case: tuple[ZoneInfo, datetime, int],
) -> None:
    zone, change, minutes = case
    now = change + timedelta(minutes=minutes)
    start = day_start(now, zone)
    assert start <= now
    assert start.astimezone(zone).date() == now.astimezone(zone).date()
    assert (start - timedelta(microseconds=1)).astimezone(zone).date() < now.astimezone(zone).date()


def test_the_daily_cap() -> None:
    assert under_daily_cap(4, 5)
    assert not under_daily_cap(5, 5)
    assert under_daily_cap(10_000, None)
