"""What the benchmarks need around the platform's processes: a clean environment, free ports,
readiness, a stop that always happens, a database of their own, and a quiet machine."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from results_file import REPO_ROOT

T = TypeVar("T")

# Variables that would make a started platform use something other than what we give it.
PLATFORM_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "OPENROUTER_API_KEY",
    "LLM_BASE_URL",
    "LLM_DEFAULT_MODEL",
    "ENVIRONMENT",
    "DATA_DIR",
    "WORKER_HEALTH_PORT",
    "JOB_QUEUE_NAME",
    "KOMMO_REQUESTS_PER_SECOND",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "SENTRY_DSN",
)


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


def platform_env(**variables: str) -> dict[str, str]:
    """This process's environment without the platform's variables, plus `variables`."""
    env = {key: value for key, value in os.environ.items() if key not in PLATFORM_VARIABLES}
    env.update(variables, PYTHONUNBUFFERED="1")
    return env


def platform_cli() -> Path:
    """The `agent-platform` command of this Python's environment."""
    cli = Path(sys.executable).with_name("agent-platform")
    return cli if cli.exists() else REPO_ROOT / ".venv" / "bin" / "agent-platform"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(
    probe: Callable[[], T],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
) -> T:
    """Until `probe` returns something true (a connection refused counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what}: the process exited with code {process.returncode}")
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError, KeyError):
            result = probe()
            if result:
                return result
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready after {timeout:g}s")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes] | None, name: str, timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in {timeout:g}s; killing pid {process.pid}", file=sys.stderr)
        process.kill()
        process.wait(timeout=10)


def wait_for_quiet_machine(limit_seconds: float) -> dict[str, Any]:
    """Wait (a while) for the machine to be nearly idle; say how busy it was."""
    import psutil

    started = time.monotonic()
    busy = psutil.cpu_percent(interval=1.0)
    while busy >= 25.0 and time.monotonic() - started < limit_seconds:
        busy = psutil.cpu_percent(interval=1.0)
    return {
        "waited_seconds": round(time.monotonic() - started, 1),
        "busy_percent_in_last_second": busy,
        "quiet": busy < 25.0,
    }


def create_database(server_url: str, prefix: str) -> tuple[str, str]:
    """A new, empty database on the server of `server_url`: its URL and its name."""
    import psycopg
    from sqlalchemy.engine import make_url

    from agent_platform.db.urls import libpq_url

    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False), name


def drop_database(server_url: str, name: str) -> None:
    import psycopg

    from agent_platform.db.urls import libpq_url

    with psycopg.connect(libpq_url(server_url), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def bench_database(server_url: str | None, prefix: str) -> Iterator[tuple[str, str]]:
    """A database of the run's own, dropped (or stopped) afterwards: a new one on the server
    of `server_url`, else an embedded PostgreSQL. Yields its URL and what server it is on."""
    if server_url:
        database_url, name = create_database(server_url, prefix)
        try:
            yield database_url, "given"
        finally:
            drop_database(server_url, name)
        return
    from agent_platform.db.embedded import start_embedded_postgres

    embedded = start_embedded_postgres(Path(tempfile.mkdtemp(prefix="ap-bench-pg-")))
    try:
        yield embedded.url, "embedded (pgserver)"
    finally:
        embedded.stop()
