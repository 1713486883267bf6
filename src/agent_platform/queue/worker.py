"""The worker process: Procrastinate's worker, queue maintenance, the automation clock (a tick
every minute: automation.tick), and its own /health and /metrics.

/health and /metrics are served from a thread, not the event loop, so that a stuck loop is
reported as 503 instead of a health probe that merely hangs.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import structlog

from agent_platform.automation.tick import run_clock
from agent_platform.ops.backups.schedule import run_backup_clock
from agent_platform.ops.health import database_check, run_check
from agent_platform.ops.metrics import CONTENT_TYPE, render_metrics
from agent_platform.queue.maintenance import run_maintenance
from agent_platform.services import Services

log = structlog.get_logger("worker")

TICK_SECONDS = 1.0
DATABASE_CHECK_EVERY = 5.0
STUCK_AFTER_SECONDS = 10.0


@dataclass
class WorkerVitals:
    """What the health thread reads; written only by the event loop."""

    last_tick: float = field(default_factory=time.monotonic)
    database_ok: bool = False
    database_detail: str | None = "not checked yet"

    def report(self) -> tuple[bool, dict[str, object]]:
        loop_lag = time.monotonic() - self.last_tick
        loop_ok = loop_lag < STUCK_AFTER_SECONDS
        checks = {
            "event_loop": {
                "status": "ok" if loop_ok else "failing",
                "detail": f"last tick {loop_lag:.1f}s ago",
            },
            "database": {
                "status": "ok" if self.database_ok else "failing",
                "detail": self.database_detail,
            },
        }
        return loop_ok and self.database_ok, checks


async def _keep_vitals(services: Services, vitals: WorkerVitals) -> None:
    last_database_check = 0.0
    while True:
        vitals.last_tick = time.monotonic()
        if vitals.last_tick - last_database_check >= DATABASE_CHECK_EVERY:
            result = await run_check("database", database_check(services.engine))
            vitals.database_ok, vitals.database_detail = result.ok, result.detail
            last_database_check = time.monotonic()
        await asyncio.sleep(TICK_SECONDS)


def _health_server(
    services: Services, vitals: WorkerVitals, loop: asyncio.AbstractEventLoop, host: str, port: int
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                healthy, checks = vitals.report()
                body = {"status": "ok" if healthy else "failing", "checks": checks}
                self._send(200 if healthy else 503, json.dumps(body).encode(), "application/json")
            elif self.path == "/metrics":
                future = asyncio.run_coroutine_threadsafe(render_metrics(services), loop)
                try:
                    self._send(200, future.result(timeout=STUCK_AFTER_SECONDS), CONTENT_TYPE)
                except TimeoutError:
                    future.cancel()
                    self._send(503, b"worker event loop is not responding\n", "text/plain")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds would drown the log."""

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


async def run_worker(services: Services, *, health_host: str = "0.0.0.0") -> None:
    """Run until cancelled; on cancellation, running jobs finish before the worker stops.

    (Procrastinate waits for them without a time limit when shutdown_graceful_timeout is
    unset; each job bounds itself with its own LLM and HTTP timeouts.)
    """
    settings = services.settings
    vitals = WorkerVitals()
    server = _health_server(
        services, vitals, asyncio.get_running_loop(), health_host, settings.worker_health_port
    )
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    side_tasks = [
        asyncio.create_task(_keep_vitals(services, vitals), name="worker-vitals"),
        asyncio.create_task(
            run_maintenance(
                services.queue,
                stalled_after=settings.job_stalled_after_seconds,
                check_every=settings.job_stalled_check_seconds,
                succeeded_retention_hours=settings.succeeded_job_retention_hours,
            ),
            name="queue-maintenance",
        ),
        asyncio.create_task(run_clock(services), name="automation-clock"),
        asyncio.create_task(run_backup_clock(services), name="backup-clock"),
    ]
    log.info(
        "worker_started",
        queue=settings.job_queue_name,
        concurrency=settings.job_concurrency,
        health_port=server.server_address[1],
    )
    try:
        await services.queue.run_worker_async(
            queues=[settings.job_queue_name],
            concurrency=settings.job_concurrency,
            install_signal_handlers=False,
            additional_context={"services": services},
            # Heartbeats often enough that a dead worker's jobs are re-queued within a minute.
            update_heartbeat_interval=min(10.0, settings.job_stalled_after_seconds / 3),
            stalled_worker_timeout=settings.job_stalled_after_seconds,
        )
    finally:
        for task in side_tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, return_exceptions=True)
        server.shutdown()
        server.server_close()
        log.info("worker_stopped")
