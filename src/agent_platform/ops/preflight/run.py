"""Every preflight check, in the order an operator reads them, into one report."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_platform.config import Settings
from agent_platform.ops.preflight.configuration import Role, configuration_checks
from agent_platform.ops.preflight.outcome import CheckOutcome, PreflightReport, failed, skipped
from agent_platform.ops.preflight.reachability import reachability_checks
from agent_platform.ops.preflight.source_tree import (
    code_checks,
    critical_files_outcome,
    healthcheck_outcome,
    migrations_outcome,
    secrets_outcome,
)


@dataclass(frozen=True)
class PreflightOptions:
    environment: str
    role: Role
    urls: Sequence[str] = ()
    # The source checkout whose files are checked; None: an installed package, no checkout.
    source: Path | None = None
    code_checks: bool = True


# Told the name of each stage as it starts (a progress display).
StageListener = Callable[[str], None]


async def run_preflight(
    settings: Settings | None,
    options: PreflightOptions,
    *,
    settings_error: str | None = None,
    on_stage: StageListener = lambda _: None,
) -> PreflightReport:
    """Run every check. Without settings (they did not validate) the configuration fails and
    what needs it is skipped; the files are checked all the same."""
    checks: list[CheckOutcome] = []
    if settings is None:
        checks.append(failed("settings", settings_error or "settings did not validate"))
        checks.append(skipped("services", "the settings did not validate"))
    else:
        on_stage("Configuration")
        checks += configuration_checks(settings, options.role)
        on_stage("Database, Redis, LLM and instances")
        checks += await reachability_checks(settings, options.urls)
    on_stage("Files")
    checks.append(migrations_outcome())
    if options.source is None:
        note = "not a source checkout"
        checks += [
            skipped(name, note)
            for name in ("critical files", "Dockerfile HEALTHCHECK", "no secrets in the tree")
        ]
    else:
        checks += [critical_files_outcome(options.source), healthcheck_outcome(options.source)]
        on_stage("Secrets scan")
        checks.append(await asyncio.to_thread(secrets_outcome, options.source))
    if options.source is not None and options.code_checks:
        on_stage("Lint and type check")
        checks += await code_checks(options.source)
    else:
        reason = "--skip-code-checks" if options.source is not None else "not a source checkout"
        checks += [skipped("lint (ruff)", reason), skipped("types (mypy)", reason)]
    return PreflightReport(options.environment, options.role.value, checks)
