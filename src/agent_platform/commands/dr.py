"""`agent-platform dr …`: disaster recovery: a measured drill."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from agent_platform.commands.backup import (
    backup_key,
    progress_bar,
    reported_errors,
    target_database,
)
from agent_platform.commands.common import JsonOutput, load_settings

app = typer.Typer(help="Disaster recovery: a measured drill.", no_args_is_help=True)


@app.command("drill")
def drill(
    rto_target: Annotated[
        float | None,
        typer.Option(
            min=0, help="Recovery time objective in minutes; default DR_RTO_TARGET_MINUTES."
        ),
    ] = None,
    rpo_target: Annotated[
        float | None,
        typer.Option(min=0, help="Recovery point objective in hours; default DR_RPO_TARGET_HOURS."),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Back up, restore into a scratch database, verify, and measure RTO and RPO.

    RPO is the age of the newest backup taken before the drill (none: not met). Exit 0 when
    the restore verified and both targets are met, 1 otherwise, 2 on bad input, 3 when the
    database cannot be reached.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from agent_platform.ops.dr_drill import run_drill

    settings = load_settings("cli")
    rto_minutes = settings.dr_rto_target_minutes if rto_target is None else rto_target
    rpo_hours = settings.dr_rpo_target_hours if rpo_target is None else rpo_target
    with reported_errors(), progress_bar(as_json) as on_progress, target_database(settings) as url:
        report = run_drill(
            url,
            settings.backup_directory,
            rto_target_seconds=rto_minutes * 60,
            rpo_target_seconds=rpo_hours * 3600,
            encryption_key=backup_key(settings),
            on_progress=on_progress,
        )
    if as_json:
        figures = asdict(report) | {
            "rto_met": report.rto_met,
            "rpo_met": report.rpo_met,
            "passed": report.passed,
        }
        typer.echo(json.dumps(figures))
    else:
        table = Table(title=f"Disaster-recovery drill (backup {report.backup_id})")
        for column in ("Objective", "Target", "Measured", ""):
            table.add_column(column)
        rpo = "no earlier backup" if report.rpo_seconds is None else _duration(report.rpo_seconds)
        rows = [
            ("Restore verified", "yes", "yes" if report.verified else "no", report.verified),
            (
                "RTO",
                _duration(report.rto_target_seconds),
                _duration(report.rto_seconds),
                report.rto_met,
            ),
            ("RPO", _duration(report.rpo_target_seconds), rpo, report.rpo_met),
        ]
        for name, target, measured, met in rows:
            mark = Text("✓", style="green") if met else Text("✗", style="red")
            table.add_row(name, target, measured, mark)
        console = Console()
        console.print(table)
        for problem in report.problems:
            console.print(Text(f"✗ {problem}", style="red"))
    if not report.passed:
        raise typer.Exit(1)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
