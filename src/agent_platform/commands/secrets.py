"""`agent-platform secrets …`: secrets: scan files and git history, rotate the encryption key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agent_platform.commands.common import JsonOutput, load_settings, run_async

app = typer.Typer(
    help="Secrets: scan files and git history, rotate the encryption key.", no_args_is_help=True
)


@app.command("rotate-key")
def rotate_key(
    batch_size: Annotated[
        int, typer.Option(min=1, help="Values re-encrypted per transaction (one short lock each).")
    ] = 500,
    as_json: JsonOutput = False,
) -> None:
    """Re-encrypt every stored secret from ENCRYPTION_KEY_PREVIOUS to ENCRYPTION_KEY.

    Give every platform process both keys first: they then read values under either key
    while this runs. Run again after an interruption: it continues where it stopped.

    Exit code 0 when the new key alone reads every value, 1 when some value is unreadable,
    2 when the keys are wrong, 3 when the database cannot be reached.
    """
    from rich.console import Console
    from rich.progress import Progress
    from sqlalchemy.exc import OperationalError

    from agent_platform.ops.key_rotation.console import print_report
    from agent_platform.ops.key_rotation.keys import RotationRefusedError, rotation_box
    from agent_platform.ops.key_rotation.rotation import RotationReport, rotate_database
    from agent_platform.runner import resolve_database

    settings = load_settings("cli")
    try:
        box = rotation_box(settings)
    except RotationRefusedError as exc:
        typer.echo(f"Cannot rotate: {exc}", err=True)
        raise typer.Exit(2) from None
    # Progress goes to stderr, so stdout holds only the report (or the JSON).
    progress = Progress(console=Console(stderr=True), disable=as_json, transient=True)
    found: dict[str, RotationReport] = {}

    async def run() -> None:
        url, embedded = resolve_database(settings)
        try:
            found["report"] = await rotate_database(
                url, box, batch_size=batch_size, progress=progress
            )
        finally:
            if embedded:
                embedded.stop()

    try:
        run_async(run())
    except OperationalError as exc:
        typer.echo(f"Database error: {str(exc.orig).splitlines()[0]}", err=True)
        raise typer.Exit(3) from None
    report = found["report"]
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        print_report(Console(), report)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def scan(
    path: Annotated[
        Path, typer.Argument(help="File or directory to scan; with --history, a git repository.")
    ] = Path("."),
    history: Annotated[
        bool, typer.Option("--history", help="Scan every commit reachable from any ref instead.")
    ] = False,
    allowlist: Annotated[
        Path | None,
        typer.Option(help="Allow-list file (default: .secrets-allowlist in PATH).", dir_okay=False),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Find API keys, tokens, private keys and passwords in files or in the git history.

    Exit code 0 when nothing is found, 1 on findings, 2 on bad input.
    """
    from rich.console import Console
    from rich.progress import Progress

    from agent_platform.ops.secret_scan import SecretScanError, scan_history, scan_tree
    from agent_platform.ops.secret_scan.console import findings_json, print_findings

    # Progress goes to stderr, so stdout holds only the findings (or the JSON); only on a
    # terminal, so that an error is the one line on stderr for a script or a hook.
    stderr = Console(stderr=True)
    progress = Progress(console=stderr, disable=as_json or not stderr.is_terminal, transient=True)
    task = progress.add_task("Scanning history" if history else "Scanning files", total=None)
    scanner = scan_history if history else scan_tree
    try:
        with progress:
            findings = scanner(
                path,
                allowlist,
                on_progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
    except SecretScanError as exc:
        typer.echo(f"Cannot scan: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(findings_json(findings))
    else:
        where = str(path.resolve())
        print_findings(Console(), findings, f"the history of {where}" if history else where)
    if findings:
        raise typer.Exit(1)
