"""`agent-platform preflight`: checks a deployment before it goes live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent_platform.commands.common import JsonOutput, first_line
from agent_platform.config import Environment
from agent_platform.ops.preflight.configuration import Role

if TYPE_CHECKING:
    from agent_platform.ops.preflight.outcome import PreflightReport

_MARKS = {
    "passed": "[green]✓[/]",
    "warning": "[yellow]![/]",
    "failed": "[red]✗[/]",
    "skipped": "[dim]-[/]",
}


def _http_urls(urls: list[str] | None) -> list[str] | None:
    for url in urls or []:
        if not url.startswith(("http://", "https://")):
            raise typer.BadParameter(
                f"{url!r} is not an http(s) URL, e.g. https://agents.example.com"
            )
    return urls


def preflight(
    env: Annotated[
        Environment | None,
        typer.Option(help="Judge as if ENVIRONMENT were this (default: ENVIRONMENT)."),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL",
            help="A running api instance whose /api/health must answer 200 and status ok "
            "(repeatable).",
            callback=_http_urls,
        ),
    ] = None,
    role: Annotated[
        Role, typer.Option(help="Which process's variables are required: api, worker or all.")
    ] = Role.ALL,
    source: Annotated[
        Path | None,
        typer.Option(
            help="The source checkout whose files are checked (default: the checkout this "
            "package is installed from; none for an installed package).",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    skip_code_checks: Annotated[
        bool, typer.Option("--skip-code-checks", help="Skip ruff and mypy (about 20 s).")
    ] = False,
    as_json: JsonOutput = False,
) -> None:
    """Check configuration, database, files and secrets before deploying.

    \b
    Checks: the environment variables the role needs (DATABASE_URL outside development,
    ENCRYPTION_KEY and SECRET_KEY strong, PUBLIC_BASE_URL https in production, the LLM, Kommo
    OAuth all-or-none, and more: docs/operations.md); the database reachable and at the
    latest migration; Redis when REDIS_URL is set; the LLM endpoint (a warning only); and,
    in a source checkout, critical files, the Dockerfile's HEALTHCHECK, a secrets scan, ruff
    and mypy; the /api/health of each --url.

    Exit code 0 when every check passes (warnings allowed), 1 when one fails, 2 on bad
    arguments.
    """
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from agent_platform.config import Settings
    from agent_platform.kit.event_loop import run_event_loop
    from agent_platform.ops.logging import configure_logging
    from agent_platform.ops.preflight.run import PreflightOptions, run_preflight
    from agent_platform.ops.preflight.source_tree import installed_checkout

    settings: Settings | None
    settings_error = None
    try:
        settings = Settings(environment=env) if env else Settings()
    except ValidationError as exc:
        settings, settings_error = None, first_line(exc)
    configure_logging(
        service="preflight",
        level=settings.log_level if settings else "WARNING",
        fmt=settings.log_format if settings else "json",
    )
    environment = env or (settings.environment if settings else Environment.DEVELOPMENT)
    options = PreflightOptions(
        environment=environment.value,
        role=role,
        urls=url or [],
        source=(source.resolve() if source else installed_checkout()),
        code_checks=not skip_code_checks,
    )
    found: list[PreflightReport] = []
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        disable=as_json,
        transient=True,
    )

    async def run() -> None:
        stage = progress.add_task("Preflight", total=None)
        with progress:
            found.append(
                await run_preflight(
                    settings,
                    options,
                    settings_error=settings_error,
                    on_stage=lambda name: progress.update(stage, description=name),
                )
            )

    run_event_loop(run())
    report = found[0]
    if as_json:
        typer.echo(json.dumps(report.as_json()))
    else:
        _print_report(report)
    raise typer.Exit(report.exit_code)


def _print_report(report: PreflightReport) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "", "Check", "Detail", title=f"Preflight: {report.environment}, role {report.role}"
    )
    for check in report.checks:
        table.add_row(_MARKS[check.status.value], check.name, check.detail)
    console = Console()
    console.print(table)
    counts = {
        status: sum(check.status.value == status for check in report.checks)
        for status in ("failed", "warning")
    }
    if report.passed:
        console.print(f"[green]Preflight passed[/] ({counts['warning']} warning(s)).")
    else:
        console.print(
            f"[red]Preflight failed[/]: {counts['failed']} check(s) failed, "
            f"{counts['warning']} warning(s)."
        )
