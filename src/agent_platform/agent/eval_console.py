"""An evaluation report for a person at a terminal: one row per case, then a summary."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_platform.agent.evaluation import CaseResult, EvalReport

EXCERPT_CHARS = 80


def print_report(console: Console, report: EvalReport) -> None:
    table = Table(title=f"Agent {report.agent_id}, version {report.version}")
    table.add_column("Case")
    table.add_column("Result")
    table.add_column("Why")
    table.add_column("Reply")
    for case in report.cases:
        # Names, reasons and replies are plain Text: brackets in them are not rich markup.
        table.add_row(
            Text(case.name),
            Text("passed", style="green") if case.passed else Text("failed", style="red"),
            Text("; ".join(case.failures)),
            Text(_excerpt(case)),
        )
    console.print(table)
    console.print(f"{report.passed} passed, {report.failed} failed, {len(report.cases)} cases")


def _excerpt(case: CaseResult) -> str:
    """The last thing the customer was told, or what happened instead."""
    if case.replies:
        last = " ".join(case.replies[-1].split())
        return last if len(last) <= EXCERPT_CHARS else last[: EXCERPT_CHARS - 1] + "…"
    return "(handed off)" if case.handoff else "(silent)"
