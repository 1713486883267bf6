"""`agent-platform backup …`: create, list, verify by restoring, restore, prune."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Database backups: create, list, verify by restoring, restore, prune.",
    no_args_is_help=True,
)
