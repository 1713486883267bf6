"""`agent-platform queue …`: figures, a monitor with exit codes, retrying failed jobs."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from agent_platform.commands.common import JsonOutput, load_settings

if TYPE_CHECKING:
    from rich.table import Table
    from sqlalchemy.ext.asyncio import AsyncEngine

    from agent_platform.config import Settings
    from agent_platform.queue.stats import QueueFigures, TaskFigures

app = typer.Typer(
    help="The job queue: figures, a monitor with exit codes, retrying failed jobs.",
    no_args_is_help=True,
)

T = TypeVar("T")
STATS_WINDOW_HOURS = 24

QueueNames = Annotated[
    list[str] | None,
    typer.Option(
        "--queue",
        help="A queue to report (repeatable). Default: JOB_QUEUE_NAME and every queue "
        "holding jobs.",
    ),
]
# The database work of a command: given an engine and the database's URL.
DatabaseWork = Callable[["AsyncEngine", str], Awaitable[T]]


@app.command("stats")
def stats(queue: QueueNames = None, as_json: JsonOutput = False) -> None:
    """Show waiting, delayed, active and failed jobs per queue, and jobs per task (last 24 h).

    Exit code 0, or 3 when the database cannot be reached.
    """
    from datetime import timedelta

    from agent_platform.queue.stats import jobs_by_task, queue_figures

    settings = load_settings("cli")

    async def read(engine: AsyncEngine, _: str) -> tuple[list[QueueFigures], list[TaskFigures]]:
        figures = await queue_figures(engine, queue or [settings.job_queue_name])
        tasks = await jobs_by_task(engine, timedelta(hours=STATS_WINDOW_HOURS))
        return _only(figures, queue), tasks

    figures, tasks = _with_database(settings, read, as_json=False)
    if as_json:
        document = {
            "queues": [asdict(found) for found in figures],
            "tasks_last_24h": [asdict(task) for task in tasks],
        }
        typer.echo(json.dumps(document))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(_figures_table(figures))
    if not tasks:
        console.print(f"No jobs in the last {STATS_WINDOW_HOURS} h.")
        return
    table = Table("Task", "Status", "Jobs", title=f"Jobs per task, last {STATS_WINDOW_HOURS} h")
    for task in tasks:
        table.add_row(task.task, task.status, str(task.jobs))
    console.print(table)


@app.command("monitor")
def monitor(
    warning: Annotated[
        int, typer.Option(help="Waiting (due) jobs in one queue from which it is a warning.")
    ] = 500,
    critical: Annotated[
        int, typer.Option(help="Waiting (due) jobs in one queue from which it is critical.")
    ] = 1000,
    queue: QueueNames = None,
    as_json: JsonOutput = False,
) -> None:
    """Check the queue against thresholds: for cron, a health check or a monitoring agent.

    Exit code 0 ok, 1 warning, 2 critical (the worst queue decides), 3 the database cannot be
    reached. Thresholds below 1, or a warning not below the critical one, are a usage error:
    exit code 2 with the reason on stderr.
    """
    from agent_platform.ops.queue_monitor import ThresholdError, Thresholds, judge
    from agent_platform.queue.stats import queue_figures

    try:
        thresholds = Thresholds(warning=warning, critical=critical)
    except ThresholdError as exc:
        raise typer.BadParameter(str(exc)) from None
    settings = load_settings("cli")

    async def read(engine: AsyncEngine, _: str) -> list[QueueFigures]:
        return _only(await queue_figures(engine, queue or [settings.job_queue_name]), queue)

    report = judge(_with_database(settings, read, as_json=as_json), thresholds)
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        from rich.console import Console

        console = Console()
        console.print(_figures_table([verdict.figures for verdict in report.queues]))
        console.print(
            f"Status: {report.status.value.upper()} (warning from {thresholds.warning}, "
            f"critical from {thresholds.critical} waiting jobs)"
        )
    raise typer.Exit(report.status.exit_code)


@app.command("retry-failed")
def retry_failed(
    task: Annotated[str | None, typer.Option(help="Only jobs of this task.")] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Only jobs that failed within this long, e.g. 30m, 2h, 1d."),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Put failed jobs back in the queue, due now, and say how many.

    Each retry counts as an attempt (Procrastinate's own retry): a job that had used up its
    automatic retries runs once more. Exit code 0, 2 on a bad --since, 3 when the database
    cannot be reached.
    """
    from agent_platform.ops.queue_monitor import (
        DurationError,
        RetryOutcome,
        parse_duration,
        retry_failed_jobs,
    )

    try:
        failed_within = None if since is None else parse_duration(since)
    except DurationError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--since'") from None
    settings = load_settings("cli")

    async def retry(engine: AsyncEngine, url: str) -> RetryOutcome:
        return await retry_failed_jobs(engine, url, task=task, failed_within=failed_within)

    outcome = _with_database(settings, retry, as_json=False)
    if as_json:
        typer.echo(json.dumps(asdict(outcome)))
        return
    line = f"Put {outcome.retried} failed job(s) back in the queue."
    if outcome.skipped:
        line += f" {outcome.skipped} were no longer failed (retried or removed meanwhile)."
    typer.echo(line)


def _only(figures: list[QueueFigures], queues: Sequence[str] | None) -> list[QueueFigures]:
    """The queues asked for by name, or, when none were, every queue reported."""
    return [found for found in figures if not queues or found.queue in queues]


def _figures_table(figures: Sequence[QueueFigures]) -> Table:
    from rich.table import Table

    table = Table(
        "Queue", "Waiting", "Delayed", "Active", "Failed", "Oldest waiting", title="Job queues"
    )
    for found in figures:
        table.add_row(
            found.queue,
            str(found.waiting),
            str(found.delayed),
            str(found.active),
            str(found.failed),
            _age(found.oldest_waiting_seconds) if found.waiting else "-",
        )
    return table


def _age(seconds: float) -> str:
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def _with_database(settings: Settings, work: DatabaseWork[T], *, as_json: bool) -> T:
    """Run `work` on a short-lived engine; a database that cannot be asked exits with 3.

    With `as_json`, stdout still gets one document, saying the status is unknown and why.
    """
    import procrastinate
    from sqlalchemy.exc import SQLAlchemyError

    from agent_platform.db.embedded import EmbeddedPostgresError
    from agent_platform.kit.event_loop import run_event_loop
    from agent_platform.ops.queue_monitor import UNREACHABLE_EXIT_CODE, command_engine

    found: list[T] = []

    async def run() -> None:
        url, embedded = settings.database_url, None
        if url is None:
            # The runner imports the whole app (seconds): only the embedded database needs it.
            from agent_platform.runner import resolve_database

            url, embedded = resolve_database(settings)
        engine = command_engine(url)
        try:
            found.append(await work(engine, url))
        finally:
            await engine.dispose()
            if embedded:
                embedded.stop()

    try:
        run_event_loop(run())
    except (
        SQLAlchemyError,
        OSError,
        procrastinate.exceptions.ConnectorException,
        EmbeddedPostgresError,
    ) as exc:
        reason = _reason(exc)
        if as_json:
            typer.echo(json.dumps({"status": "unknown", "error": reason}))
        typer.echo(f"Cannot read the queue from the database: {reason}", err=True)
        raise typer.Exit(UNREACHABLE_EXIT_CODE) from None
    return found[0]


def _reason(exc: Exception) -> str:
    """The driver's own first line: SQLAlchemy's wrapping adds a class name and a link."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__
