"""How long the platform's SQL statements take: `db_query_duration_seconds`.

Timed by SQLAlchemy's cursor events on every engine db.session creates, so api, worker and
commands alike are covered. Statements the /metrics scrape runs itself are left out
(`untimed_queries`): the histogram describes the platform's work, and a platform nobody uses
reads flat however often Prometheus asks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

from prometheus_client import Histogram
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, ExceptionContext
from sqlalchemy.exc import SQLAlchemyError

DB_QUERY_DURATION = Histogram(
    "db_query_duration_seconds",
    "Time of each SQL statement the platform runs (failed ones included), scrapes excluded.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# Where a statement's start waits for its end: statements on one connection run one at a time.
_STARTED = "agent_platform.query_started"
_untimed: ContextVar[bool] = ContextVar("agent_platform_untimed_queries", default=False)


@contextmanager
def untimed_queries() -> Iterator[None]:
    """Statements run in this context (and in tasks it starts) are not timed."""
    token = _untimed.set(True)
    try:
        yield
    finally:
        _untimed.reset(token)


def instrument_engine(engine: Engine) -> None:
    """Time every statement `engine` sends (for an AsyncEngine, pass its `sync_engine`)."""
    event.listen(engine, "before_cursor_execute", _before_cursor_execute)
    event.listen(engine, "after_cursor_execute", _after_cursor_execute)
    event.listen(engine, "handle_error", _handle_error)


def _before_cursor_execute(connection: Connection, *_: Any) -> None:
    # SQLAlchemy runs this in the calling task's context (greenlet_spawn passes it on).
    if not _untimed.get():
        connection.info[_STARTED] = time.perf_counter()


def _after_cursor_execute(connection: Connection, *_: Any) -> None:
    _observe(connection)


def _handle_error(context: ExceptionContext) -> None:
    # A statement that fails (a timeout, a lock wait cancelled) took its time too. A connection
    # already invalidated has nothing to time; the statement's own error must come through.
    if context.connection is not None:
        with suppress(SQLAlchemyError):
            _observe(context.connection)


def _observe(connection: Connection) -> None:
    started = connection.info.pop(_STARTED, None)
    if started is not None:
        DB_QUERY_DURATION.observe(time.perf_counter() - started)
