"""Running the platform's processes: database, migrations, servers, worker, clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass

import structlog
import uvicorn
from fastapi import FastAPI

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.db.embedded import EmbeddedPostgres, start_embedded_postgres
from agent_platform.db.migrate import upgrade_to_head
from agent_platform.demo import sandbox_token, seed_demo
from agent_platform.kit.failures import PlatformPartFailedError
from agent_platform.ops.backups.schedule import check_backup_schedule
from agent_platform.ops.sentry import init_sentry
from agent_platform.queue.worker import run_worker
from agent_platform.services import Services, open_services

log = structlog.get_logger("runner")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signals to the runner, which stops every part in order."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class PlatformParts:
    api: bool
    worker: bool
    migrate: bool
    demo: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    sandbox_port: int = 8001

    @property
    def service(self) -> str:
        """The name error reports carry: api, worker, or platform (`up` runs both)."""
        if self.api and self.worker:
            return "platform"
        return "api" if self.api else "worker"


def resolve_database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    """DATABASE_URL when set; otherwise the embedded PostgreSQL under DATA_DIR."""
    if settings.database_url:
        return settings.database_url, None
    embedded = start_embedded_postgres(settings.data_dir)
    log.info("embedded_postgres_started", data_dir=str(settings.data_dir / "postgres"))
    return embedded.url, embedded


async def _start_server(app: FastAPI, host: str, port: int) -> tuple[_Server, asyncio.Task[None]]:
    server = _Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(), name=f"http-{port}")
    while not server.started:
        if task.done():  # e.g. the port is taken: surface uvicorn's error now
            await task
            raise SystemExit(f"could not listen on {host}:{port}")
        await asyncio.sleep(0.05)
    return server, task


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def run_platform(settings: Settings, parts: PlatformParts) -> None:
    init_sentry(settings, parts.service)
    if parts.worker:
        check_backup_schedule(settings.backup_schedule)
    database_url, embedded = resolve_database(settings)
    try:
        if parts.migrate:
            await upgrade_to_head(database_url)
        async with AsyncExitStack() as stack:
            services = await stack.enter_async_context(open_services(settings, database_url))
            await _run_parts(settings, parts, services, database_url)
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded_postgres_stopped")


async def _run_parts(
    settings: Settings, parts: PlatformParts, services: Services, database_url: str
) -> None:
    stop = _stop_event()
    servers: list[tuple[_Server, asyncio.Task[None]]] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        api_url = f"http://{_display_host(parts.host)}:{parts.port}"
        if parts.demo:
            token = sandbox_token(settings.data_dir)
            sandbox = await _start_server(create_sandbox_app(token), parts.host, parts.sandbox_port)
            servers.append(sandbox)
            kommo_url = f"http://{_display_host(parts.host)}:{parts.sandbox_port}"
            demo = await seed_demo(
                services, api_url=api_url, kommo_base_url=kommo_url, kommo_access_token=token
            )
            _announce(
                f"Kommo sandbox: {kommo_url}   demo credentials: {settings.data_dir}/demo.json"
            )
            _announce(f"Play a lead: {kommo_url}/sandbox/")
            _announce(f"Demo login: {demo.admin_email} / {demo.admin_password}")
        if parts.worker:
            tasks.append(asyncio.create_task(run_worker(services), name="worker"))
        if parts.api:
            servers.append(
                await _start_server(
                    create_app(settings, database_url, services), parts.host, parts.port
                )
            )
            _announce(f"GPT Agent Platform is running at {api_url}  (Ctrl-C to stop)")
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait(
            [stopping, *tasks, *(task for _, task in servers)], return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        log.info("shutting_down", requested=stop.is_set())
    finally:
        for server, _ in servers:
            server.should_exit = True
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, *(t for _, t in servers), return_exceptions=True)
    failures = [repr(result) for result in results if isinstance(result, Exception)]
    for failure in failures:
        log.error("part_failed", error=failure)
    if failures or not stop.is_set():
        # A part ended on its own: exit non-zero so that a supervisor restarts the process.
        raise PlatformPartFailedError("; ".join(failures) or "a part of the platform stopped")


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "::") else host


def _announce(line: str) -> None:
    # For the person at the terminal; logs go to stderr as JSON.
    print(line, file=sys.stdout, flush=True)
