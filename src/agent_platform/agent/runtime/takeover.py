"""Human takeover: a manager writing to the customer silences the agent for a while."""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_TAKEOVER_PAUSE_MINUTES = 60


def takeover_paused_until(
    last_manager_message_at: datetime | None, pause_minutes: int
) -> datetime | None:
    """Until when the agent stays silent in this conversation; None if no manager has written.

    Counted from the manager's latest message, so a manager who keeps talking keeps the
    agent quiet, and it resumes by itself once the manager has been silent long enough.
    """
    if last_manager_message_at is None:
        return None
    return last_manager_message_at + timedelta(minutes=pause_minutes)
