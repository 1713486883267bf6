"""`agent-platform secrets …`: secrets: scan files and git history, rotate the encryption key."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Secrets: scan files and git history, rotate the encryption key.", no_args_is_help=True
)
