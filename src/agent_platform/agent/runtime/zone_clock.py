"""How a time zone's wall clock maps to instants, across its offset changes.

zoneinfo converts one datetime at a time and does not list a zone's transitions, so the two
things schedules need are found here: where the offset changes, and the first instant a wall
time is shown (or skipped, when clocks go forward).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

# Offsets are probed this far apart: a zone changes its offset a few times a year at most,
# so two changes never fall within one probe and none is missed.
_PROBE = timedelta(hours=6)
_PRECISION = timedelta(microseconds=1)


@dataclass(frozen=True)
class OffsetSpan:
    """Instants in [start, end) (UTC), over which the zone's UTC offset stays `offset`."""

    start: datetime
    end: datetime
    offset: timedelta

    def wall(self, instant: datetime) -> datetime:
        """The naive local time the clock shows at `instant`."""
        return (instant + self.offset).replace(tzinfo=None)

    def instant(self, wall: datetime) -> datetime:
        """The instant within this span at which the clock shows the naive `wall` time."""
        return (wall - self.offset).replace(tzinfo=UTC)


def offset_spans(zone: ZoneInfo, start: datetime) -> Iterator[OffsetSpan]:
    """Consecutive spans from `start` on, each under one offset; the caller stops reading."""
    span_start = start.astimezone(UTC)
    while True:
        offset = _offset(zone, span_start)
        probe = span_start + _PROBE
        if _offset(zone, probe) == offset:
            span_end = probe
        else:
            span_end = _offset_change(zone, span_start, probe)
        yield OffsetSpan(span_start, span_end, offset)
        span_start = span_end


def first_instant_showing(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant (UTC) the clock shows the naive `wall` time or, when the clock skips
    it, the instant it jumps past it."""
    # fold=0 takes the offset in force before a transition, fold=1 the one after: for a time
    # shown twice, fold=0 is the earlier instant; for a skipped one they straddle the jump.
    before = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if before.astimezone(zone).replace(tzinfo=None) == wall:
        return before
    after = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _offset_change(zone, min(before, after), max(before, after))


def require_aware(instant: datetime) -> datetime:
    """`instant`, refused when naive: a naive time would be read in the server's zone."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"an aware datetime is needed, got the naive {instant.isoformat()}")
    return instant


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None, "a ZoneInfo always has an offset"
    return offset


def _offset_change(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The instant in (before, after] at which the offset in force at `before` ends."""
    old = _offset(zone, before)
    while after - before > _PRECISION:
        middle = before + (after - before) / 2
        if _offset(zone, middle) == old:
            before = middle
        else:
            after = middle
    return after
