"""What the agent does with a customer's message that arrives outside its working hours."""

from __future__ import annotations

from datetime import datetime

from agent_platform.agent.runtime.decisions import (
    SendOutOfHoursMessage,
    SilenceReason,
    StaySilent,
    WaitReason,
    WaitUntil,
)
from agent_platform.agent.runtime.working_hours import (
    OutsideHours,
    WorkingHours,
    is_open,
    next_opening,
)

AfterHoursDecision = WaitUntil | SendOutOfHoursMessage | StaySilent


def after_hours_decision(
    hours: WorkingHours | None, now: datetime, out_of_hours_message_sent_at: datetime | None
) -> AfterHoursDecision | None:
    """None when the agent may answer now (no working hours set means always open);
    otherwise answer at the next opening, send the out-of-hours message, or stay silent.

    The out-of-hours message goes once per closed stretch: a customer writing five times
    overnight is told once, and told again on the next night.
    """
    if hours is None or is_open(hours, now):
        return None
    if hours.outside_hours is OutsideHours.SILENT:
        return StaySilent(SilenceReason.OUTSIDE_WORKING_HOURS)
    if hours.outside_hours is OutsideHours.ANSWER_LATER:
        opening = next_opening(hours, now)
        if opening is None:
            return StaySilent(SilenceReason.NO_OPENING_AHEAD)
        return WaitUntil(opening, WaitReason.WORKING_HOURS)
    if _told_since_last_closing(hours, now, out_of_hours_message_sent_at):
        return StaySilent(SilenceReason.OUT_OF_HOURS_MESSAGE_ALREADY_SENT)
    assert hours.out_of_hours_message is not None, "WorkingHours requires it in this mode"
    return SendOutOfHoursMessage(hours.out_of_hours_message)


def _told_since_last_closing(hours: WorkingHours, now: datetime, sent_at: datetime | None) -> bool:
    if sent_at is None:
        return False
    # Not reopened between the message and now: still the same closed stretch.
    reopened = next_opening(hours, sent_at)
    return reopened is None or reopened > now
