"""Checks of a source checkout: critical files, the image's HEALTHCHECK, secrets, lint, types.

An installed package (a container image) has no checkout: these are skipped with a note,
except the migrations, which travel with the package.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import agent_platform
from agent_platform.db.migrate import MIGRATIONS_DIR
from agent_platform.ops.preflight.outcome import CheckOutcome, failed, passed, skipped, warning

# What building and deploying from a checkout needs.
CRITICAL_FILES = (
    "pyproject.toml",
    "uv.lock",
    "deploy/Dockerfile",
    "deploy/docker-compose.yml",
)
DOCKERFILE = "deploy/Dockerfile"
CODE_CHECK_TIMEOUT_SECONDS = 300.0
_INSTRUCTION = re.compile(r"^\s*([A-Za-z]+)\b(.*)$")


def installed_checkout() -> Path | None:
    """The source checkout this package runs from (an editable install), if it is one."""
    root = Path(agent_platform.__file__).resolve().parents[2]
    is_checkout = (root / "pyproject.toml").is_file() and (root / "src" / "agent_platform").is_dir()
    return root if is_checkout else None


def migrations_outcome(migrations_dir: Path = MIGRATIONS_DIR) -> CheckOutcome:
    versions = sorted((migrations_dir / "versions").glob("*.py"))
    if not (migrations_dir / "env.py").is_file() or not versions:
        return failed("migrations files", f"no Alembic migrations under {migrations_dir}")
    return passed("migrations files", f"{len(versions)} under {migrations_dir.name}/versions")


def critical_files_outcome(root: Path) -> CheckOutcome:
    missing = [name for name in CRITICAL_FILES if not (root / name).is_file()]
    if missing:
        return failed("critical files", f"missing: {', '.join(missing)}")
    return passed("critical files", ", ".join(CRITICAL_FILES))


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\s*\n", " ", dockerfile)
    found = []
    for line in joined.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _INSTRUCTION.match(line)
        if match:
            found.append((match.group(1).upper(), match.group(2).strip()))
    return found


def healthcheck_outcome(root: Path) -> CheckOutcome:
    """The image's final stage declares a HEALTHCHECK (one in a build stage does not count)."""
    name = "Dockerfile HEALTHCHECK"
    path = root / DOCKERFILE
    if not path.is_file():
        return failed(name, f"{DOCKERFILE} not found")
    final_stage: list[tuple[str, str]] = []
    for instruction in _instructions(path.read_text(encoding="utf-8", errors="replace")):
        final_stage = [] if instruction[0] == "FROM" else [*final_stage, instruction]
    checks = [arguments for instruction, arguments in final_stage if instruction == "HEALTHCHECK"]
    if not checks:
        return failed(name, f"{DOCKERFILE}: the final stage has no HEALTHCHECK")
    if checks[-1].upper() == "NONE":
        return failed(name, f"{DOCKERFILE}: HEALTHCHECK NONE disables it")
    return passed(name, DOCKERFILE)


def secrets_outcome(root: Path) -> CheckOutcome:
    name = "no secrets in the tree"
    try:
        from agent_platform.ops.secret_scan import scan_tree
    except ImportError as exc:
        return warning(name, f"check unavailable: {exc}")
    try:
        findings = scan_tree(root)
    except Exception as exc:  # the scanner's own refusal (an unreadable allow-list, say)
        return failed(name, f"scan failed: {exc}")
    if not findings:
        return passed(name, "secrets scan found nothing")
    shown = ", ".join(f"{f.path}:{f.line} {f.rule}" for f in findings[:3])
    more = f" and {len(findings) - 3} more" if len(findings) > 3 else ""
    return failed(
        name, f"{len(findings)} finding(s): {shown}{more} (`agent-platform secrets scan`)"
    )


async def code_checks(root: Path) -> list[CheckOutcome]:
    """ruff and mypy from the checkout's own virtual environment, side by side."""
    bin_dir = root / ".venv" / "bin"
    if not (bin_dir / "ruff").is_file():
        note = f"no {bin_dir / 'ruff'}: not a development checkout"
        return [skipped("lint (ruff)", note), skipped("types (mypy)", note)]
    return list(
        await asyncio.gather(
            _tool_outcome(
                "lint (ruff)",
                root,
                str(bin_dir / "ruff"),
                "check",
                "--output-format",
                "concise",
                ".",
            ),
            _tool_outcome("types (mypy)", root, str(bin_dir / "mypy"), "src"),
        )
    )


async def _tool_outcome(name: str, root: Path, *command: str) -> CheckOutcome:
    try:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=root,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as exc:
        return failed(name, f"could not run {command[0]}: {exc}")
    try:
        output, _ = await asyncio.wait_for(process.communicate(), CODE_CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        return failed(name, f"no result within {CODE_CHECK_TIMEOUT_SECONDS:g}s")
    lines = output.decode(errors="replace").strip().splitlines()
    if process.returncode == 0:
        return passed(name, lines[-1] if lines else "clean")
    if not lines:
        return failed(name, f"exit code {process.returncode}")
    # The first problem and the tool's count: the whole list is one command away.
    return failed(name, lines[-1] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}")
