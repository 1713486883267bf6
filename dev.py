#!/usr/bin/env python3
"""Set up the virtual environment from the lock file, then run the platform or its checks.

    python3 dev.py up --demo     # run the platform (embedded PostgreSQL, Kommo sandbox, demo)
    python3 dev.py test          # lint, type check, architecture contracts, then the tests
    python3 dev.py <command>     # any other `agent-platform` command

Needs only Python 3.11+: uv (pinned) is installed into .venv and syncs it from uv.lock.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
UV_VERSION = "0.13.9"
STAMP = VENV / ".synced-lock"

CHECKS = (
    ("ruff", "check", "src", "tests", "bench", "dev.py"),
    ("ruff", "format", "--check", "src", "tests", "bench", "dev.py"),
    ("mypy",),
    ("lint-imports",),
)


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("uv.lock", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    return f"{UV_VERSION}:{digest.hexdigest()}"


def ensure_environment() -> None:
    """Create .venv and sync it from uv.lock, skipping the work when nothing changed."""
    # dev.py is the one file an older interpreter may run: say so instead of failing later.
    if sys.version_info < (3, 11):  # noqa: UP036
        sys.exit(f"Python 3.11 or newer is needed (found {sys.version.split()[0]}).")
    if STAMP.exists() and STAMP.read_text() == _lock_digest():
        return
    if not (BIN / "python").exists():
        print("Creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    uv = BIN / "uv"
    if not uv.exists():
        python = str(BIN / "python")
        # An environment made by uv itself has no pip: bring it in first.
        if subprocess.run([python, "-c", "import pip"], capture_output=True).returncode:  # noqa: S603
            _run([python, "-m", "ensurepip", "--default-pip"])
        _run([python, "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"])
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENV), "UV_PYTHON_DOWNLOADS": "never"}
    _run([str(uv), "sync", "--frozen", "--python", str(BIN / "python")], env=env)
    STAMP.write_text(_lock_digest())


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(command, cwd=ROOT, env=env, check=False)  # noqa: S603
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def run_checks(pytest_args: list[str]) -> int:
    for check in CHECKS:
        print(f"$ {' '.join(check)}", flush=True)
        completed = subprocess.run([str(BIN / check[0]), *check[1:]], cwd=ROOT, check=False)  # noqa: S603
        if completed.returncode != 0:
            return completed.returncode
    print("$ pytest", " ".join(pytest_args), flush=True)
    return subprocess.run([str(BIN / "pytest"), *pytest_args], cwd=ROOT, check=False).returncode  # noqa: S603


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    ensure_environment()
    if argv[0] == "test":
        return run_checks(argv[1:])
    return _exec([str(BIN / "agent-platform"), *argv])


def _exec(command: list[str]) -> NoReturn:
    # Replace this process, so the terminal (and Ctrl-C) belong to the platform itself.
    os.execv(command[0], command)  # noqa: S606


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
