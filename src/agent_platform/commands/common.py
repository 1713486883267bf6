"""What every `agent-platform` command shares: settings or a clear refusal, running a coroutine."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from agent_platform.config import Settings, WeakSecretError, ensure_secrets
from agent_platform.db.embedded import EmbeddedPostgresError
from agent_platform.kit.event_loop import run_event_loop
from agent_platform.kit.failures import PlatformPartFailedError, StartupRefusedError
from agent_platform.ops.logging import configure_logging

JsonOutput = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def load_settings(service: str) -> Settings:
    """Settings with logging configured, or one clear line and exit code 2.

    Logging is configured before the secrets are checked, so that the warning about a
    generated development key is a log line on stderr, never text on stdout (`--json`).
    """
    try:
        settings = Settings()
        configure_logging(service=service, level=settings.log_level, fmt=settings.log_format)
        return ensure_secrets(settings)
    except (WeakSecretError, ValidationError) as exc:
        typer.echo(f"Configuration error: {first_line(exc)}", err=True)
        raise typer.Exit(2) from None


def first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}"
    return str(exc)


def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    try:
        run_event_loop(coroutine)
    except EmbeddedPostgresError as exc:
        typer.echo(f"Database error: {exc}", err=True)
        raise typer.Exit(2) from None
    except StartupRefusedError as exc:
        typer.echo(f"Cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    except PlatformPartFailedError as exc:
        typer.echo(f"Stopped: {exc}", err=True)
        raise typer.Exit(1) from None
