"""`agent-platform dr …`: disaster recovery: a measured drill."""

from __future__ import annotations

import typer

app = typer.Typer(help="Disaster recovery: a measured drill.", no_args_is_help=True)
