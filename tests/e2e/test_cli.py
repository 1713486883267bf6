"""The `agent-platform` command as an operator meets it: help, refusals, first run."""

from __future__ import annotations

import json
import secrets
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from agent_platform.cli import app
from agent_platform.db.migrate import head_revision
from tests.support.processes import CLI, platform_env, run_cli

# Nothing listens here: a command that tried to connect would fail differently.
UNREACHABLE_DATABASE = "postgresql://nobody@127.0.0.1:9/none"
GOOD_KEY = secrets.token_urlsafe(40)
SHORT_KEY = "tooShortKey123"


def command_paths() -> list[list[str]]:
    """Every command and group of the CLI, as argument lists ([] is the top level)."""

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_every_command_has_help(tmp_path: Path) -> None:
    paths = command_paths()
    assert {"up", "api", "worker", "db", "kommo"} <= {p[0] for p in paths if p}
    env = platform_env(DATA_DIR=str(tmp_path / "data"))
    # Started together: each is a separate interpreter start-up.
    processes = {
        " ".join(path): subprocess.Popen(
            [str(CLI), *path, "--help"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in paths
    }
    try:
        results = {name: process.communicate(timeout=60) for name, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    for name, (stdout, stderr) in results.items():
        assert processes[name].returncode == 0, f"`{name} --help`: {stderr}"
        assert "Usage:" in stdout, name
    assert not (tmp_path / "data").exists(), "--help must not create anything"


REFUSALS = {
    "short encryption key": (
        {"ENVIRONMENT": "production", "ENCRYPTION_KEY": SHORT_KEY, "SECRET_KEY": GOOD_KEY},
        "ENCRYPTION_KEY",
        "shorter than 32",
    ),
    "known default encryption key": (
        {"ENVIRONMENT": "production", "ENCRYPTION_KEY": "change-me", "SECRET_KEY": GOOD_KEY},
        "ENCRYPTION_KEY",
        "known default",
    ),
    "missing secret key": (
        {"ENVIRONMENT": "production", "ENCRYPTION_KEY": GOOD_KEY},
        "SECRET_KEY",
        "not set",
    ),
    "invalid setting": (
        {"JOB_CONCURRENCY": "0", "ENCRYPTION_KEY": GOOD_KEY, "SECRET_KEY": GOOD_KEY},
        "JOB_CONCURRENCY",
        "",
    ),
}


@pytest.fixture(scope="module")
def refusals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`agent-platform api` under each bad configuration, run side by side (each start is slow)."""
    started = {}
    for case, (variables, _, _) in REFUSALS.items():
        workdir = tmp_path_factory.mktemp("refusal")
        env = platform_env(
            DATABASE_URL=UNREACHABLE_DATABASE, DATA_DIR=str(workdir / "data"), **variables
        )
        process = subprocess.Popen(
            [str(CLI), "api", "--port", "1"],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started[case] = (process, workdir)
    try:
        results = {}
        for case, (process, workdir) in started.items():
            stdout, stderr = process.communicate(timeout=60)
            results[case] = (process.returncode, stdout, stderr, workdir)
        yield results
    finally:
        for process, _ in started.values():
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("case", list(REFUSALS))
def test_bad_configuration_is_refused_in_one_line(case: str, refusals: dict[str, Any]) -> None:
    _, variable, reason = REFUSALS[case]
    returncode, stdout, stderr, workdir = refusals[case]
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert variable in lines[0]
    assert reason in lines[0]
    assert "Traceback" not in stderr
    assert SHORT_KEY not in stderr + stdout, "a secret's value must never be printed"
    assert stdout == ""
    assert not (workdir / "data" / "secrets").exists(), "no key is generated outside development"


@dataclass(frozen=True)
class DbCurrentRuns:
    data_dir: Path
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]
    keys_after_first: dict[str, str]


@pytest.fixture(scope="module")
def db_current_runs(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> DbCurrentRuns:
    """`db current --json` twice on one DATA_DIR, in development with no keys configured."""
    workdir = tmp_path_factory.mktemp("db-current")
    data_dir = workdir / "data"
    env = platform_env(DATABASE_URL=database_url, DATA_DIR=str(data_dir))
    first = run_cli(["db", "current", "--json"], env=env, cwd=workdir)
    keys_after_first = {
        path.name: path.read_text() for path in (data_dir / "secrets").glob("*") if path.is_file()
    }
    second = run_cli(["db", "current", "--json"], env=env, cwd=workdir)
    return DbCurrentRuns(data_dir, first, second, keys_after_first)


def test_development_keys_are_generated_once_and_reused(db_current_runs: DbCurrentRuns) -> None:
    first, second = db_current_runs.first, db_current_runs.second
    head = head_revision()
    at_head = {"current": head, "head": head, "at_head": True}
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.strip().splitlines()[-1]) == at_head
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) == at_head

    secrets_dir = db_current_runs.data_dir / "secrets"
    assert set(db_current_runs.keys_after_first) == {"encryption_key", "secret_key"}
    for name, generated in db_current_runs.keys_after_first.items():
        path = secrets_dir / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{name} must be private"
        assert len(generated.strip()) >= 32
        # The second run found the key and kept it: what it encrypted stays readable.
        assert path.read_text() == generated, name
    keys = db_current_runs.keys_after_first
    assert keys["encryption_key"] != keys["secret_key"]
    assert "generated_development_secret" in first.stdout + first.stderr
    assert "generated_development_secret" not in second.stdout + second.stderr


def test_json_output_is_only_json_even_when_keys_are_generated(
    db_current_runs: DbCurrentRuns,
) -> None:
    assert json.loads(db_current_runs.first.stdout)["at_head"] is True


def test_a_worker_that_cannot_start_exits_non_zero(database_url: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        env = platform_env(
            DATABASE_URL=database_url,
            ENCRYPTION_KEY=GOOD_KEY,
            SECRET_KEY=GOOD_KEY,
            DATA_DIR=str(tmp_path / "data"),
            WORKER_HEALTH_PORT=str(taken.getsockname()[1]),
        )
        result = run_cli(["worker"], env=env, cwd=tmp_path)
    assert "Address already in use" in result.stderr
    assert result.returncode != 0
