"""`agent-platform queue …`: figures, a monitor with exit codes, retrying failed jobs."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="The job queue: figures, a monitor with exit codes, retrying failed jobs.",
    no_args_is_help=True,
)
