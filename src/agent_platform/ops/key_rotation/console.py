"""A key rotation's report for a person at a terminal: one row per encrypted column, then the
rows that need a look (one line each, unwrapped, for grep)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from agent_platform.ops.key_rotation.rotation import RotationReport


def print_report(console: Console, report: RotationReport) -> None:
    table = Table(title="Key rotation")
    table.add_column("Column", no_wrap=True)
    for heading in ("Re-encrypted", "Already new", "Unreadable", "Verified"):
        table.add_column(heading, justify="right")
    for column in report.columns:
        checked = column.verified + len(column.not_verified)
        table.add_row(
            f"{column.table}.{column.column}",
            str(column.rotated),
            str(column.already_current),
            str(len(column.unreadable)),
            f"{column.verified} of {checked}",
        )
    console.print(table)
    for column in report.columns:
        for row_id in column.unreadable:
            console.print(
                f"{column.table} {row_id}: {column.column} decrypts under neither key",
                soft_wrap=True,
            )
        for row_id in sorted(set(column.not_verified) - set(column.unreadable)):
            # Written under the previous key after this run passed it: a process still
            # encrypts with the old ENCRYPTION_KEY.
            console.print(
                f"{column.table} {row_id}: {column.column} is not under the new key; "
                "run again once every process uses the new ENCRYPTION_KEY",
                soft_wrap=True,
            )
    if report.ok:
        console.print("Every value is readable with ENCRYPTION_KEY alone.")
