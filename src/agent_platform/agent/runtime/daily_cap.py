"""The cap on the agent's replies per conversation per day, a day on the team's clock."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from agent_platform.agent.runtime.zone_clock import first_instant_showing, require_aware


def day_start(now: datetime, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) of `now`'s local date in `zone`: count replies from here.

    Where clocks go forward at midnight the day starts at the jump, not an hour late.
    """
    local_date = require_aware(now).astimezone(zone).date()
    return first_instant_showing(zone, datetime.combine(local_date, time.min))


def under_daily_cap(replies_today: int, cap: int | None) -> bool:
    """Whether one more reply is allowed; a None cap allows any number."""
    return cap is None or replies_today < cap
