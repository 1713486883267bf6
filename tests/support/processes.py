"""Run `agent-platform` commands as real processes, and always stop what was started.

Output goes to files rather than pipes: a chatty process can never block on a full pipe, and
a failing test can show what the process said.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil  # type: ignore[import-untyped]
from pydantic import SecretStr

from agent_platform.config import Settings

CLI = Path(sys.executable).parent / "agent-platform"
STOP_TIMEOUT_SECONDS = 20.0
T = TypeVar("T")

# Variables that would make a child process use something other than what the test gives it:
# every setting, read from the Settings model so that new ones are covered too.
_PLATFORM_VARIABLES = frozenset(
    {name.upper() for name in Settings.model_fields} | {"PROMETHEUS_MULTIPROC_DIR"}
)


def platform_env(**variables: str | None) -> dict[str, str]:
    """This process's environment without the platform's variables, plus `variables`.

    A variable given as None stays unset.
    """
    env = {key: value for key, value in os.environ.items() if key not in _PLATFORM_VARIABLES}
    env.update({key: value for key, value in variables.items() if value is not None})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def eventually(
    probe: Callable[[], T | None],
    *,
    within: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """Call `probe` until it returns something other than None (or False); return that."""
    deadline = time.monotonic() + within
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"after {within:g}s: {text}")
        time.sleep(interval)


async def eventually_async(
    probe: Callable[[], T | None],
    *,
    within: float,
    interval: float = 0.1,
    message: str | Callable[[], str] = "condition not met",
) -> T:
    """`eventually` for async tests: it polls in a worker thread (so `probe` must not touch
    the event loop's objects) while the event loop goes on serving."""
    return await asyncio.to_thread(
        eventually, probe, within=within, interval=interval, message=message
    )


async def eventually_awaited(
    probe: Callable[[], Awaitable[T | None]], what: str, *, within: float = 30.0
) -> T:
    """Await `probe` until it returns something other than None; return that. For probes
    that are coroutines on the test's own event loop (an HTTP client, a database session)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await probe()
        if found is not None:
            return found
        assert loop.time() < deadline, f"never happened within {within:g}s: {what}"
        await asyncio.sleep(0.1)


@dataclass
class RunningProcess:
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def describe(self) -> str:
        """What the process said, for assertion messages."""
        return (
            f"exit code {self.popen.poll()}\n--- stdout ---\n{self.stdout()[-3000:]}"
            f"\n--- stderr ---\n{self.stderr()[-6000:]}"
        )

    def wait_for_stdout(self, text: str, *, timeout: float) -> None:
        def printed() -> bool | None:
            if text in self.stdout():
                return True
            if self.popen.poll() is not None:
                raise AssertionError(
                    f"the process ended before printing {text!r}: " + self.describe()
                )
            return None

        eventually(printed, within=timeout, message=lambda: f"no {text!r}: " + self.describe())

    def stop(
        self, sig: signal.Signals = signal.SIGTERM, *, timeout: float = STOP_TIMEOUT_SECONDS
    ) -> int:
        """Send `sig` and wait for the exit code (AssertionError when it does not exit in time)."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the process did not exit within {timeout:g}s of {sig.name}: " + self.describe()
            ) from None


@contextmanager
def running(
    args: list[str], *, env: Mapping[str, str], cwd: Path, name: str = "process"
) -> Iterator[RunningProcess]:
    """Start `agent-platform *args`; when leaving, SIGTERM (then SIGKILL) it if still running."""
    cwd.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = cwd / f"{name}.stdout", cwd / f"{name}.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        popen = subprocess.Popen(
            [str(CLI), *args], env=dict(env), cwd=cwd, stdout=stdout, stderr=stderr
        )
    process = RunningProcess(popen, stdout_path, stderr_path)
    try:
        yield process
    finally:
        if popen.poll() is None:
            popen.terminate()
            try:
                popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


def run_cli(
    args: list[str], *, env: Mapping[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run `agent-platform *args` to completion and capture what it printed."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(CLI), *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --- PostgreSQL clusters made by pgserver -----------------------------------------------------


def postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Running postgres server processes whose data directory is `pgdata`."""
    target = str(pgdata.resolve())
    found = []
    for proc in psutil.process_iter(attrs=["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and target in cmdline:
            found.append(proc)
    return found


def pg_ctl(pgdata: Path, *args: str, timeout: float = 30.0) -> None:
    """Run pgserver's own pg_ctl on `pgdata`, as the user that owns the cluster."""
    from pgserver._commands import POSTGRES_BIN_PATH

    owner = pwd.getpwuid(pgdata.stat().st_uid).pw_name
    user = owner if os.geteuid() == 0 and owner != "root" else None
    # Files, not pipes: the server pg_ctl starts inherits them and would hold a pipe open.
    with tempfile.TemporaryFile() as output:
        completed = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), *args],
            user=user,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if completed.returncode != 0:
            output.seek(0)
            said = output.read().decode(errors="replace")
            raise subprocess.CalledProcessError(completed.returncode, completed.args, said)


def stop_leftover_postgres(pgdata: Path) -> None:
    """Stop a cluster a killed process left running (teardown only: never fails)."""
    if not (pgdata / "postmaster.pid").exists():
        return
    try:
        pg_ctl(pgdata, "-w", "-m", "immediate", "stop")
    except (subprocess.SubprocessError, OSError):
        for proc in postgres_processes(pgdata):
            proc.send_signal(signal.SIGQUIT)


def settings_env(settings: Settings, **overrides: str | None) -> dict[str, str]:
    """The environment that gives a child process the same configuration as `settings`."""

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    variables: dict[str, str | None] = {
        "DATABASE_URL": settings.database_url,
        "ENCRYPTION_KEY": secret(settings.encryption_key),
        "SECRET_KEY": secret(settings.secret_key),
        "OPENROUTER_API_KEY": secret(settings.openrouter_api_key),
        "LLM_BASE_URL": settings.llm_base_url,
        "LLM_DEFAULT_MODEL": settings.llm_default_model,
        "WORKER_HEALTH_PORT": str(settings.worker_health_port),
        "JOB_STALLED_AFTER_SECONDS": str(settings.job_stalled_after_seconds),
        "JOB_STALLED_CHECK_SECONDS": str(settings.job_stalled_check_seconds),
        "DATA_DIR": str(settings.data_dir),
    }
    variables.update(overrides)
    return platform_env(**variables)
