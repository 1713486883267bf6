"""How the integrations and operations pages write a moment: UTC to the minute, said so."""

from __future__ import annotations

from datetime import UTC, datetime


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
