"""A sequence step's delay: parsing, and the instant it comes to across zones and clock changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_platform.agent.runtime.working_hours import (
    OpeningInterval,
    WorkingHours,
    is_open,
)
from agent_platform.agent.runtime.zone_clock import first_instant_showing
from agent_platform.automation.delays import Delay, next_run_at, parse_delay
from agent_platform.automation.engine import RuleError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONES = [BERLIN, NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe"), UTC]

# Weekdays 09:00-18:00 in Berlin.
OFFICE = WorkingHours(
    timezone=BERLIN,
    weekly={
        day: (OpeningInterval.parse("09:00", "18:00"),)
        for day in ("mon", "tue", "wed", "thu", "fri")
    },
)


def utc(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# -- parsing -----------------------------------------------------------------------------------


def test_a_relative_delay_and_a_time_of_day_delay_are_read() -> None:
    assert parse_delay({"after_minutes": 90}, "d") == Delay(after_minutes=90)
    assert parse_delay(
        {"at": "10:00", "within_working_hours": True, "after_minutes": 60}, "d"
    ) == Delay(after_minutes=60, at=time(10, 0), within_working_hours=True)


def test_a_delay_is_stored_as_it_reads() -> None:
    for raw in (
        {"after_minutes": 0},
        {"after_minutes": 5, "at": "23:59", "within_working_hours": True},
    ):
        assert parse_delay(parse_delay(raw, "d").to_json(), "d") == parse_delay(raw, "d")


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        (None, "steps[0].delay", "a delay is an object"),
        ({}, "steps[0].delay", 'needs "after_minutes" or "at"'),
        ({"after_minutes": -1}, "steps[0].delay.after_minutes", "from 0 to 525600"),
        ({"after_minutes": 1.5}, "steps[0].delay.after_minutes", "whole number"),
        ({"after_minutes": True}, "steps[0].delay.after_minutes", "whole number"),
        ({"after_minutes": 525_601}, "steps[0].delay.after_minutes", "from 0 to 525600"),
        ({"at": "24:00"}, "steps[0].delay.at", "not a time of day"),
        ({"at": "9:00"}, "steps[0].delay.at", "not a time of day"),
        ({"at": 900}, "steps[0].delay.at", "not a time of day"),
        (
            {"at": "09:00", "within_working_hours": "yes"},
            "steps[0].delay.within_working_hours",
            "true or false",
        ),
        ({"after_minutes": 5, "days": 1}, "steps[0].delay.days", "unknown key 'days'"),
    ],
)
def test_bad_delays_are_refused_with_their_path(raw: object, path: str, message: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_delay(raw, "steps[0].delay")
    assert refused.value.path == path
    assert message in refused.value.message


# -- instants: examples --------------------------------------------------------------------------


def test_relative_minutes_are_elapsed_time_even_across_a_clock_change() -> None:
    # Berlin's clocks go forward at 01:00 UTC on 2024-03-31: 120 minutes are still 120 minutes.
    after = utc(2024, 3, 31, 0, 0)
    assert next_run_at(
        Delay(after_minutes=120), after=after, zone=BERLIN, working_hours=None
    ) == utc(2024, 3, 31, 2, 0)


@pytest.mark.parametrize(
    ("after", "delay", "expected"),
    [
        # 08:00 Berlin (CET, +1): 10:00 today.
        (utc(2024, 1, 15, 7, 0), Delay(at=time(10, 0)), utc(2024, 1, 15, 9, 0)),
        # 11:00 Berlin: 10:00 has passed, tomorrow's.
        (utc(2024, 1, 15, 10, 0), Delay(at=time(10, 0)), utc(2024, 1, 16, 9, 0)),
        # exactly 10:00: now.
        (utc(2024, 1, 15, 9, 0), Delay(at=time(10, 0)), utc(2024, 1, 15, 9, 0)),
        # 08:00 + at least 3 hours = 11:00: tomorrow's 10:00.
        (utc(2024, 1, 15, 7, 0), Delay(after_minutes=180, at=time(10, 0)), utc(2024, 1, 16, 9, 0)),
        # Summer (CEST, +2): 10:00 Berlin is 08:00 UTC.
        (utc(2024, 7, 1, 5, 0), Delay(at=time(10, 0)), utc(2024, 7, 1, 8, 0)),
        # The evening before clocks go forward: tomorrow's 10:00 is already at +2.
        (utc(2024, 3, 30, 20, 0), Delay(at=time(10, 0)), utc(2024, 3, 31, 8, 0)),
        # 02:30 does not exist on 2024-03-31 in Berlin: the step runs at the jump (01:00 UTC).
        (utc(2024, 3, 30, 20, 0), Delay(at=time(2, 30)), utc(2024, 3, 31, 1, 0)),
        # 02:30 is shown twice on 2024-10-27: the first time (00:30 UTC).
        (utc(2024, 10, 26, 20, 0), Delay(at=time(2, 30)), utc(2024, 10, 27, 0, 30)),
    ],
)
def test_a_time_of_day_is_the_first_one_on_the_wall_clock(
    after: datetime, delay: Delay, expected: datetime
) -> None:
    assert next_run_at(delay, after=after, zone=BERLIN, working_hours=None) == expected


@pytest.mark.parametrize(
    ("after", "delay", "expected"),
    [
        # Saturday 08:00 Berlin, "at 10:00 within working hours": Monday 09:00 is the opening,
        # and Saturday 10:00 is closed, so Monday 09:00.
        (
            utc(2024, 1, 13, 7, 0),
            Delay(at=time(10, 0), within_working_hours=True),
            utc(2024, 1, 15, 8, 0),
        ),
        # Monday 20:00 Berlin, an hour later is closed: Tuesday 09:00.
        (
            utc(2024, 1, 15, 19, 0),
            Delay(after_minutes=60, within_working_hours=True),
            utc(2024, 1, 16, 8, 0),
        ),
        # Open at the step's time: unchanged.
        (
            utc(2024, 1, 15, 7, 0),
            Delay(at=time(10, 0), within_working_hours=True),
            utc(2024, 1, 15, 9, 0),
        ),
        # Not asked to keep to the hours: Saturday 10:00 it is.
        (utc(2024, 1, 13, 7, 0), Delay(at=time(10, 0)), utc(2024, 1, 13, 9, 0)),
    ],
)
def test_within_working_hours_moves_a_closed_instant_to_the_next_opening(
    after: datetime, delay: Delay, expected: datetime
) -> None:
    assert next_run_at(delay, after=after, zone=BERLIN, working_hours=OFFICE) == expected


def test_hours_that_never_open_do_not_hold_the_step_forever() -> None:
    closed = WorkingHours(timezone=BERLIN, weekly={})
    after = utc(2024, 1, 13, 7, 0)
    delay = Delay(after_minutes=30, within_working_hours=True)
    assert next_run_at(delay, after=after, zone=BERLIN, working_hours=closed) == after + timedelta(
        minutes=30
    )


def test_unknown_working_hours_leave_the_time_as_the_delay_gives_it() -> None:
    delay = Delay(at=time(10, 0), within_working_hours=True)
    after = utc(2024, 1, 13, 7, 0)
    assert next_run_at(delay, after=after, zone=BERLIN, working_hours=None) == utc(
        2024, 1, 13, 9, 0
    )


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_run_at(
            Delay(after_minutes=1), after=datetime(2024, 1, 1), zone=BERLIN, working_hours=None
        )


# -- instants: properties ------------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
times_of_day = st.times().map(lambda t: t.replace(second=0, microsecond=0))
zones = st.sampled_from(ZONES)
minutes = st.integers(min_value=0, max_value=60 * 24 * 40)


@given(after=instants, wait=minutes, zone=zones)
def test_a_relative_delay_is_exactly_its_minutes(
    after: datetime, wait: int, zone: ZoneInfo
) -> None:
    result = next_run_at(Delay(after_minutes=wait), after=after, zone=zone, working_hours=None)
    assert result == after + timedelta(minutes=wait)
    assert result.tzinfo is UTC


@given(after=instants, wait=minutes, at=times_of_day, zone=zones)
def test_a_time_of_day_is_the_first_showing_after_the_wait(
    after: datetime, wait: int, at: time, zone: ZoneInfo
) -> None:
    earliest = after + timedelta(minutes=wait)
    result = next_run_at(
        Delay(after_minutes=wait, at=at), after=after, zone=zone, working_hours=None
    )
    assert result >= earliest
    # Within a day and the largest clock change of these zones.
    assert result - earliest < timedelta(hours=25)
    wall = result.astimezone(zone)
    if wall.time() != at:
        # Only where the clock jumps past `at`: a moment before, it showed an earlier time.
        before = (result - timedelta(microseconds=1)).astimezone(zone).time()
        assert before < at < wall.time()
    # The same time a day earlier on the wall clock came before the wait was over.
    day_before = datetime.combine(wall.date() - timedelta(days=1), at)
    assert first_instant_showing(zone, day_before) < earliest


@given(after=instants, wait=minutes, at=st.one_of(st.none(), times_of_day))
def test_within_working_hours_the_step_runs_when_open_and_never_early(
    after: datetime, wait: int, at: time | None
) -> None:
    plain = Delay(after_minutes=wait, at=at)
    kept = Delay(after_minutes=wait, at=at, within_working_hours=True)
    unconstrained = next_run_at(plain, after=after, zone=BERLIN, working_hours=OFFICE)
    result = next_run_at(kept, after=after, zone=BERLIN, working_hours=OFFICE)
    assert is_open(OFFICE, result)
    assert result >= unconstrained
    if is_open(OFFICE, unconstrained):
        assert result == unconstrained
    else:
        # The first opening: a minute earlier the office was still closed (or it was the
        # unconstrained instant itself).
        assert result == unconstrained or not is_open(OFFICE, result - timedelta(minutes=1))
