"""The queue monitor's judgement and the queue commands' refusals of bad arguments."""

from __future__ import annotations

from datetime import timedelta

import pytest
from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.ops.queue_monitor import (
    DurationError,
    QueueStatus,
    ThresholdError,
    Thresholds,
    judge,
    parse_duration,
)
from agent_platform.queue.stats import QueueFigures


def _figures(queue: str, waiting: int) -> QueueFigures:
    return QueueFigures(queue, waiting, delayed=0, active=0, failed=0, oldest_waiting_seconds=0)


@pytest.mark.parametrize(
    ("waiting", "status", "exit_code"),
    [(0, QueueStatus.OK, 0), (9, QueueStatus.OK, 0), (10, QueueStatus.WARNING, 1),
     (19, QueueStatus.WARNING, 1), (20, QueueStatus.CRITICAL, 2)],
)  # fmt: skip
def test_a_threshold_is_reached_at_its_value(
    waiting: int, status: QueueStatus, exit_code: int
) -> None:
    found = Thresholds(warning=10, critical=20).status_of(waiting)
    assert (found, found.exit_code) == (status, exit_code)


def test_the_worst_queue_decides() -> None:
    report = judge([_figures("a", 0), _figures("b", 25), _figures("c", 12)], Thresholds(10, 20))
    assert report.status is QueueStatus.CRITICAL
    assert [queue["status"] for queue in report.as_json()["queues"]] == [
        "ok",
        "critical",
        "warning",
    ]
    assert judge([], Thresholds(10, 20)).status is QueueStatus.OK


@pytest.mark.parametrize(
    ("warning", "critical", "reason"),
    [(20, 10, "must be below"), (10, 10, "must be below"), (-1, 10, "at least 1")],
)
def test_thresholds_that_cannot_work_are_refused(warning: int, critical: int, reason: str) -> None:
    with pytest.raises(ThresholdError, match=reason):
        Thresholds(warning=warning, critical=critical)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("30s", timedelta(seconds=30)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
     ("1d", timedelta(days=1)), ("1h30m", timedelta(minutes=90)), (" 2H ", timedelta(hours=2))],
)  # fmt: skip
def test_durations(raw: str, expected: timedelta) -> None:
    assert parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["", "2", "h", "2x", "-2h", "2 h", "1.5h", "0m", "2hours"])
def test_bad_durations_are_refused(raw: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(raw)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["monitor", "--warning", "1000", "--critical", "500"], "must be below --critical"),
        (["monitor", "--warning", "-5"], "at least 1"),
        (["retry-failed", "--since", "2 weeks"], "is not a duration"),
    ],
)
def test_bad_arguments_exit_2_before_touching_the_database(args: list[str], says: str) -> None:
    # Refused before settings are read: no database is needed, none is reached.
    result = CliRunner().invoke(app, ["queue", *args])
    assert result.exit_code == 2
    assert says in " ".join(result.output.split())
    assert "Traceback" not in result.output
