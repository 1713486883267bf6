"""`agent-platform backup …`: create, list, verify by restoring, restore, prune.

Exit codes: 0 done; 1 the work failed (verification found problems, pg_dump or pg_restore
failed, a damaged file, a restore not confirmed); 2 bad input (unknown id, no backups, a
missing, short or wrong BACKUP_ENCRYPTION_KEY, a target database that is not empty, a bad
URL, no pg_dump that fits the server); 3 the database cannot be reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_platform.commands.common import JsonOutput, load_settings

if TYPE_CHECKING:
    from rich.console import Console

    from agent_platform.config import Settings
    from agent_platform.ops.backups import BackupManifest, ProgressCallback

app = typer.Typer(
    help="Database backups: create, list, verify by restoring, restore, prune.",
    no_args_is_help=True,
)

BackupId = Annotated[str, typer.Argument(help="The backup's id, as `backup list` shows it.")]


def _keep(period: str, setting: str) -> Any:  # typer.Option is typed as returning Any
    return typer.Option(
        min=0,
        show_default=setting,
        help=f"Keep the newest backup of each of the last N {period}.",
    )


@app.command("create")
def create(as_json: JsonOutput = False) -> None:
    """Back up the database into BACKUP_DIR (encrypted when BACKUP_ENCRYPTION_KEY is set)."""
    from agent_platform.ops.backups import create_backup, manifest_as_json

    settings = load_settings("cli")
    with reported_errors(), progress_bar(as_json) as on_progress, target_database(settings) as url:
        manifest = create_backup(
            url,
            settings.backup_directory,
            encryption_key=backup_key(settings),
            on_progress=on_progress,
        )
    if as_json:
        typer.echo(json.dumps(manifest_as_json(manifest)))
    else:
        _print_manifests(_console(), [manifest], title="Backup created")


@app.command("list")
def list_(as_json: JsonOutput = False) -> None:
    """List the backups in BACKUP_DIR, newest first."""
    from agent_platform.ops.backups import list_backups, manifest_as_json

    settings = load_settings("cli")
    manifests = list_backups(settings.backup_directory)
    if as_json:
        typer.echo(json.dumps([manifest_as_json(manifest) for manifest in manifests]))
    elif not manifests:
        typer.echo(f"No backups in {settings.backup_directory}.")
    else:
        _print_manifests(_console(), manifests, title=f"Backups in {settings.backup_directory}")


@app.command("verify")
def verify(
    backup_id: Annotated[
        str | None, typer.Argument(help="The backup's id; the newest when left out.")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Restore a backup into a scratch database and check what it holds (exit 1 when not ok).

    Checked: the file's checksum, the key, the restore, row counts per table, the migration
    revision, constraints and indexes valid. The scratch database is dropped afterwards.
    """
    from rich.table import Table
    from rich.text import Text

    from agent_platform.ops.backups import verify_backup

    settings = load_settings("cli")
    with reported_errors(), progress_bar(as_json) as on_progress, target_database(settings) as url:
        report = verify_backup(
            url,
            settings.backup_directory,
            backup_id,
            encryption_key=backup_key(settings),
            on_progress=on_progress,
        )
    if as_json:
        typer.echo(json.dumps(asdict(report)))
    else:
        table = Table(title=f"Backup {report.backup_id}")
        table.add_column("Result")
        table.add_column("Restore and checks")
        table.add_column("Tables")
        table.add_column("Rows")
        table.add_row(
            Text("ok", style="green") if report.ok else Text("failed", style="red"),
            f"{report.restore_seconds:.1f} s",
            str(len(report.row_counts)),
            str(sum(report.row_counts.values())),
        )
        console = _console()
        console.print(table)
        for problem in report.problems:
            console.print(Text(f"✗ {problem}", style="red"))
    if not report.ok:
        raise typer.Exit(1)


@app.command("restore")
def restore(
    backup_id: BackupId,
    target_url: Annotated[
        str | None,
        typer.Option(help="The database to restore into; default: DATABASE_URL."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean",
            help="Restore into a database that is not empty: drop and recreate what the "
            "backup holds (other objects stay).",
        ),
    ] = False,
    as_json: JsonOutput = False,
) -> None:
    """Restore a backup into a database: an empty one, unless --clean. Asks first."""
    from agent_platform.ops.backups import load_manifest, restore_backup
    from agent_platform.ops.backups.database import describe_database

    settings = load_settings("cli")
    with reported_errors():
        manifest = load_manifest(settings.backup_directory, backup_id)
        with target_database(settings, target_url) as url:
            target = describe_database(url)
            question = f"Restore backup {manifest.id} into the database {target}?"
            if clean:
                question += " What the backup holds is dropped there first."
            # The question goes to stderr: with --json, stdout holds the JSON only.
            if not yes and not typer.confirm(question, err=True):
                typer.echo("Nothing restored.", err=True)
                raise typer.Exit(1)
            with progress_bar(as_json) as on_progress:
                seconds = restore_backup(
                    settings.backup_directory,
                    manifest.id,
                    url,
                    encryption_key=backup_key(settings),
                    clean=clean,
                    on_progress=on_progress,
                )
    if as_json:
        typer.echo(json.dumps({"backup_id": manifest.id, "target": target, "seconds": seconds}))
    else:
        typer.echo(f"Restored backup {manifest.id} into {target} in {seconds:.1f} s.")


@app.command("prune")
def prune(
    keep_daily: Annotated[int | None, _keep("days", "BACKUP_KEEP_DAILY")] = None,
    keep_weekly: Annotated[int | None, _keep("ISO weeks", "BACKUP_KEEP_WEEKLY")] = None,
    keep_monthly: Annotated[int | None, _keep("months", "BACKUP_KEEP_MONTHLY")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be removed; remove nothing.")
    ] = False,
    as_json: JsonOutput = False,
) -> None:
    """Remove old backups: keep the newest of each of the last N days, weeks and months (UTC).

    The newest backup is always kept.
    """
    from rich.table import Table

    from agent_platform.ops.backups import prune_backups

    settings = load_settings("cli")
    result = prune_backups(
        settings.backup_directory,
        keep_daily=settings.backup_keep_daily if keep_daily is None else keep_daily,
        keep_weekly=settings.backup_keep_weekly if keep_weekly is None else keep_weekly,
        keep_monthly=settings.backup_keep_monthly if keep_monthly is None else keep_monthly,
        dry_run=dry_run,
    )
    if as_json:
        typer.echo(json.dumps(asdict(result) | {"dry_run": dry_run}))
        return
    table = Table(title="Would prune" if dry_run else "Pruned")
    table.add_column("Backup")
    table.add_column("")
    for backup in result.kept:
        table.add_row(backup, "kept")
    for backup in result.removed:
        table.add_row(backup, "would be removed" if dry_run else "removed")
    _console().print(table)


# --- shared by the backup and dr commands ---------------------------------------------------


def backup_key(settings: Settings) -> str | None:
    key = settings.backup_encryption_key
    return key.get_secret_value() if key else None


@contextmanager
def target_database(settings: Settings, url: str | None = None) -> Iterator[str]:
    """`url`, else DATABASE_URL, else the embedded PostgreSQL (stopped afterwards)."""
    if url or settings.database_url:
        # Known already: no need to import the runner (and the whole app) to be told so.
        yield url or str(settings.database_url)
        return
    from agent_platform.runner import resolve_database

    resolved, embedded = resolve_database(settings)
    try:
        yield resolved
    finally:
        if embedded:
            embedded.stop()


@contextmanager
def reported_errors() -> Iterator[None]:
    """Backup errors as one line on stderr and the exit code the module's docstring gives."""
    from agent_platform.db.embedded import EmbeddedPostgresError
    from agent_platform.ops.backups import BackupError, BackupFailedError, DatabaseUnreachableError

    try:
        yield
    except DatabaseUnreachableError as exc:
        typer.echo(f"Database error: {exc}", err=True)
        raise typer.Exit(3) from None
    except BackupFailedError as exc:
        typer.echo(f"Backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    except (BackupError, EmbeddedPostgresError) as exc:
        typer.echo(f"Backup error: {exc}", err=True)
        raise typer.Exit(2) from None


@contextmanager
def progress_bar(as_json: bool) -> Iterator[ProgressCallback]:
    """A progress bar on stderr (none with --json, or when no one watches: not a terminal), fed
    by the phases the work reports."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    progress = Progress(console=console, disable=as_json or not console.is_terminal, transient=True)
    task = progress.add_task("Starting", total=1.0)

    def on_progress(phase: str, fraction: float) -> None:
        progress.update(task, description=phase, completed=fraction)

    with progress:
        yield on_progress


def _console() -> Console:
    from rich.console import Console

    return Console()


def _print_manifests(console: Console, manifests: list[BackupManifest], *, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("ID", "Created (UTC)", "Size", "Encrypted", "Revision", "Rows", "Took"):
        table.add_column(column)
    for manifest in manifests:
        table.add_row(
            manifest.id,
            f"{manifest.created_at:%Y-%m-%d %H:%M:%S}",
            _size(manifest.size_bytes),
            "yes" if manifest.encrypted else "no",
            manifest.revision or "-",
            str(sum(manifest.row_counts.values())),
            f"{manifest.seconds:.1f} s",
        )
    console.print(table)


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    size, unit = size_bytes / 1024, "KiB"
    for larger in ("MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.1f} {unit}"
