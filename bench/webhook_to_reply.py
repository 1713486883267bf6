"""Webhook to reply: how fast Kommo `message[add]` webhooks become reply notes in Kommo.

It drives a running `agent-platform up --demo` (the api, the worker and the Kommo sandbox in
one process), or starts one itself with a zero-delay fake LLM, and measures:

* webhook acknowledgement latency (HTTP 200) under an open-loop load: sends are scheduled at
  `--rate` per second whatever the server does, so a slow server does not slow the offered
  load; latency is reported from the moment the request was sent (service time) and from
  its scheduled moment (corrected for coordinated omission);
* webhook-to-note latency per message: from sending the webhook until its reply note exists
  in the sandbox. Exact per message from the platform's own records (the delivery row holds
  the sandbox note id and the moment it was marked sent, right after the sandbox answered),
  and cross-checked by polling the sandbox's `GET /sandbox/notes` from a separate process;
* the stages in between (from Procrastinate's event log): queue wait and job duration;
* sustained pipeline throughput (notes/s after a warm-up) and the time to drain the backlog;
* a reference in the same run: the raw rate of Procrastinate no-op jobs on the same database
  with the same worker concurrency.

Results go to bench/results/webhook_to_reply-<UTC timestamp>.json with the parameters, the
machine and the goals (met or not); a summary is printed.

    .venv/bin/python bench/webhook_to_reply.py                       # embedded PostgreSQL
    .venv/bin/python bench/webhook_to_reply.py --database-url postgresql://u@host/db
    .venv/bin/python bench/webhook_to_reply.py --demo-json .data/demo.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import (
    BenchError,
    create_database,
    drop_database,
    free_port,
    platform_cli,
    platform_env,
    stop_process,
    wait_for_quiet_machine,
    wait_until,
)
from results_file import REPO_ROOT, RESULTS_DIR, machine_details, write_results

FORM_HEADERS = {"content-type": "application/x-www-form-urlencoded"}
REPLY_TASK = "answer_incoming_message"
NOOP_QUEUE = "bench-noop"
NOOP_TASK = "bench_noop"
KOMMO_LIFTED_RATE = 50  # the highest KOMMO_REQUESTS_PER_SECOND the platform accepts
KOMMO_BATCH_LIMIT = 50  # items per add call: the sandbox, like Kommo, refuses more

GOAL_ACK_RATE = 200.0
GOAL_ACK_P99_MS = 50.0
GOAL_NOTE_P95_MS = 300.0
GOAL_THROUGHPUT_SHARE = 0.5

# One time base for the whole process: epoch seconds with perf_counter's resolution, so they
# compare with PostgreSQL's timestamps and with the poller process's clock.
_WALL0 = time.time()
_PERF0 = time.perf_counter()


def now() -> float:
    return _WALL0 + (time.perf_counter() - _PERF0)


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Goals: ack p99 < 50 ms at 200 req/s; webhook-to-note p95 < 300 ms; "
        "pipeline throughput >= half the raw Procrastinate no-op rate.",
    )
    target = parser.add_argument_group("what to drive")
    target.add_argument(
        "--demo-json",
        type=Path,
        help="DATA_DIR/demo.json of an already running `agent-platform up --demo` "
        "(default: start one in a temporary DATA_DIR)",
    )
    target.add_argument(
        "--database-url",
        help="PostgreSQL of the platform: given to the started platform as DATABASE_URL, and "
        "read by the benchmark (default: the embedded one under DATA_DIR/postgres)",
    )
    target.add_argument(
        "--private-database",
        action="store_true",
        help="with --database-url: run in a new database created on that server for this run "
        "and dropped after it, so that nothing else using the given database (another "
        "`up --demo` re-seeding the demo, other workers on the same queue) interferes",
    )
    target.add_argument(
        "--startup-timeout", type=float, default=180.0, help="seconds to wait for `up` (180)"
    )
    target.add_argument(
        "--keep-data-dir", action="store_true", help="keep the temporary DATA_DIR and its logs"
    )
    load = parser.add_argument_group("load")
    load.add_argument("--rate", type=float, default=200.0, help="webhooks per second (200)")
    load.add_argument(
        "--concurrency", type=int, default=50, help="webhook requests in flight at most (50)"
    )
    load.add_argument("--duration", type=float, default=20.0, help="seconds of load (20)")
    load.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="first seconds left out of the sustained throughput (2)",
    )
    load.add_argument(
        "--leads",
        type=int,
        default=200,
        help="leads to spread the messages over, created through the sandbox API; "
        "0 sends every message to the sandbox's demo lead (200)",
    )
    load.add_argument(
        "--prewarm",
        type=int,
        default=10,
        help="messages sent one by one (and answered) before the measured load (10)",
    )
    load.add_argument(
        "--kommo-limit",
        choices=("lift", "keep"),
        default="lift",
        help="Kommo allows 7 API requests/s per account, which the sandbox enforces and the "
        "platform keeps to: one account can then get at most about 7 replies/s. 'lift' turns "
        "the sandbox's limit off (POST /sandbox/faults) and starts the platform with "
        f"KOMMO_REQUESTS_PER_SECOND={KOMMO_LIFTED_RATE}, so the platform itself is measured; "
        "'keep' measures one account as Kommo would throttle it (lift)",
    )
    load.add_argument(
        "--request-timeout", type=float, default=30.0, help="per webhook request, seconds (30)"
    )
    measure = parser.add_argument_group("measurement")
    measure.add_argument(
        "--poll-interval",
        type=float,
        default=0.05,
        help="seconds between polls of GET /sandbox/notes; 0 disables the poller (0.05)",
    )
    measure.add_argument(
        "--poll-max-duty",
        type=float,
        default=0.05,
        help="the poller waits long enough that its requests keep the platform busy at most "
        "this share of the time: /sandbox/notes returns every note, so it grows (0.05)",
    )
    measure.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds to wait after the load for every reply (600)",
    )
    reference = parser.add_argument_group("raw queue reference")
    reference.add_argument(
        "--noop-jobs", type=int, default=5000, help="no-op jobs for the reference (5000)"
    )
    reference.add_argument(
        "--noop-batch", type=int, default=500, help="jobs per batch_defer_async call (500)"
    )
    reference.add_argument(
        "--worker-concurrency",
        type=int,
        default=int(os.environ.get("JOB_CONCURRENCY", "5")),
        help="worker concurrency of the reference (JOB_CONCURRENCY, else 5: the platform's)",
    )
    reference.add_argument(
        "--skip-reference", action="store_true", help="do not run the no-op reference"
    )
    target.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="before starting, wait up to this many seconds for a second in which the "
        "machine is less than 25%% busy (others' work skews the figures); 0 skips (60)",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    # Internal: the benchmark runs its fake LLM with this same file in a child process.
    parser.add_argument("--serve-fake-llm", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or args.concurrency < 1:
        parser.error("--rate, --duration and --concurrency must be positive")
    if args.warmup >= args.duration:
        parser.error("--warmup must be shorter than --duration")
    if not 0 < args.poll_max_duty <= 1:
        parser.error("--poll-max-duty must be in (0, 1]")
    if args.private_database and not args.database_url:
        parser.error("--private-database needs --database-url")
    if args.private_database and args.demo_json:
        parser.error("--private-database starts its own platform: not with --demo-json")
    return args


# --------------------------------------------------------------------------- the target


@dataclass
class Target:
    """The platform under test and how to reach it."""

    api_url: str
    webhook_url: str
    kommo_base_url: str
    kommo_access_token: str
    data_dir: Path
    started: bool
    database_url: str | None
    database_kind: str  # "embedded", "external" or "unknown"
    platform_pid: int | None = None
    fake_llm_pid: int | None = None
    log_path: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_demo(cls, demo_path: Path, **facts: Any) -> Target:
        """What `up --demo` wrote to its demo.json (its URLs, the sandbox's token), and `facts`."""
        demo = json.loads(demo_path.read_text())
        return cls(
            api_url=demo["api_url"],
            webhook_url=demo["webhook_url"],
            kommo_base_url=demo["kommo_base_url"],
            kommo_access_token=demo["kommo_access_token"],
            data_dir=demo_path.parent,
            **facts,
        )


@dataclass
class Cleanup:
    """What the benchmark started, stopped in the right order whatever happens."""

    platform: subprocess.Popen[bytes] | None = None
    fake_llm: subprocess.Popen[bytes] | None = None
    pg_handle: Any = None
    temp_dir: Path | None = None
    keep_temp_dir: bool = False
    private_database: tuple[str, str] | None = None  # (server URL, database name)
    log_files: list[Any] = field(default_factory=list)

    def stop_processes(self) -> None:
        # The platform first (its worker finishes running jobs), then our handle on the
        # embedded PostgreSQL (the last handle stops it), then the fake LLM.
        stop_process(self.platform, "platform", timeout=60.0)
        if self.pg_handle is not None:
            with contextlib.suppress(Exception):
                self.pg_handle.cleanup()
        stop_process(self.fake_llm, "fake LLM", timeout=10.0)
        for handle in self.log_files:
            handle.close()

    def drop_private_database(self) -> None:
        if self.private_database is not None:
            drop_database(*self.private_database)

    def remove_files(self) -> None:
        if self.temp_dir is not None and not self.keep_temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_target(args: argparse.Namespace, cleanup: Cleanup) -> Target:
    """`agent-platform up --demo` in a temporary DATA_DIR, with a zero-delay fake LLM."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-webhook-to-reply-"))
    cleanup.temp_dir = data_dir
    cleanup.keep_temp_dir = args.keep_data_dir
    llm_port, api_port, sandbox_port, health_port = (free_port() for _ in range(4))

    llm_log = (data_dir / "fake-llm.log").open("wb")
    cleanup.log_files.append(llm_log)
    cleanup.fake_llm = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-fake-llm", str(llm_port)],
        cwd=REPO_ROOT,
        stdout=llm_log,
        stderr=subprocess.STDOUT,
    )
    llm_url = f"http://127.0.0.1:{llm_port}"
    wait_until(
        lambda: httpx.get(f"{llm_url}/v1/models", timeout=2).status_code == 200,
        30.0,
        "fake LLM",
        cleanup.fake_llm,
    )

    env = platform_env(
        DATA_DIR=str(data_dir),
        OPENROUTER_API_KEY="bench",
        LLM_BASE_URL=f"{llm_url}/v1",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
        ENVIRONMENT="development",
        WORKER_HEALTH_PORT=str(health_port),
    )
    if args.kommo_limit == "lift":
        env["KOMMO_REQUESTS_PER_SECOND"] = str(KOMMO_LIFTED_RATE)
    database_url = args.database_url
    if database_url and args.private_database:
        database_url = create_private_database(database_url, cleanup)
    if database_url:
        env["DATABASE_URL"] = database_url
    log_path = data_dir / "platform.log"
    platform_log = log_path.open("wb")
    cleanup.log_files.append(platform_log)
    command = [
        str(platform_cli()),
        "up",
        "--demo",
        "--host",
        "127.0.0.1",
        "--port",
        str(api_port),
        "--sandbox-port",
        str(sandbox_port),
    ]
    # cwd is the data directory so that no stray .env file changes the settings.
    cleanup.platform = subprocess.Popen(
        command, cwd=data_dir, env=env, stdout=platform_log, stderr=subprocess.STDOUT
    )
    demo_path = data_dir / "demo.json"
    api_url = f"http://127.0.0.1:{api_port}"

    def ready() -> bool:
        return (
            demo_path.exists()
            and httpx.get(f"{api_url}/api/health/live", timeout=2).status_code == 200
        )

    try:
        wait_until(ready, args.startup_timeout, "agent-platform up --demo", cleanup.platform)
    except BenchError as exc:
        raise BenchError(f"{exc}\n--- platform log (tail) ---\n{_tail(log_path)}") from None
    kind = "external, private database" if args.private_database else "external"
    if not database_url:
        cleanup.pg_handle, database_url = _embedded_database(data_dir, stop_when_last=True)
        kind = "embedded"
    return Target.from_demo(
        demo_path,
        started=True,
        database_url=database_url,
        database_kind=kind,
        platform_pid=cleanup.platform.pid,
        fake_llm_pid=cleanup.fake_llm.pid,
        log_path=log_path,
        settings={
            "command": " ".join(command[1:]),
            "JOB_CONCURRENCY": env.get("JOB_CONCURRENCY", "5 (default)"),
            "JOB_QUEUE_NAME": "agent-jobs (default)",
            "LLM": f"fake OpenAI server at {llm_url}, zero delay, fixed reply",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": env.get("REDIS_URL") or "not set (in-process fallbacks)",
            "KOMMO_REQUESTS_PER_SECOND": env.get("KOMMO_REQUESTS_PER_SECOND", "7 (default)"),
        },
    )


def create_private_database(server_url: str, cleanup: Cleanup) -> str:
    """A new, empty database on the server of `server_url`, dropped at cleanup; its URL."""
    url, name = create_database(server_url, "bench_w2r")
    cleanup.private_database = (server_url, name)
    return url


def attach_target(args: argparse.Namespace, cleanup: Cleanup) -> Target:
    """A platform someone else started with `up --demo`: read what its demo.json says."""
    demo_path = args.demo_json.resolve()
    data_dir = demo_path.parent
    database_url, kind = args.database_url, "external" if args.database_url else "unknown"
    if not database_url and (data_dir / "postgres" / "PG_VERSION").exists():
        # Never stop a server we did not start: our handle leaves it running.
        cleanup.pg_handle, database_url = _embedded_database(data_dir, stop_when_last=False)
        kind = "embedded"
    return Target.from_demo(
        demo_path,
        started=False,
        database_url=database_url,
        database_kind=kind,
        settings={"JOB_CONCURRENCY": "unknown (attached instance)"},
    )


def _embedded_database(data_dir: Path, *, stop_when_last: bool) -> tuple[Any, str]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR is not set
        from pgserver.postgres_server import get_server

        mode = "stop" if stop_when_last else None
        handle = get_server(data_dir / "postgres", cleanup_mode=mode)
    return handle, str(handle.get_uri())


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def serve_fake_llm(port: int) -> None:
    """The fake OpenAI server of the tests, quiet: no access log to compete for the CPU."""
    import uvicorn
    from tests.fakes.openai_server import create_fake_openai_app

    app = create_fake_openai_app(delay_seconds=0.0)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# --------------------------------------------------------------------------- the load


@dataclass(slots=True)
class Message:
    index: int
    message_id: str
    lead_id: int
    scheduled: float = math.nan
    dispatched: float = math.nan
    sent: float = math.nan
    acked: float = math.nan
    outcome: str = ""  # the HTTP status, or the exception's name
    accepted: int = 0
    duplicates: int = 0
    detail: str = ""


def webhook_body(message_id: str, lead_id: int, text: str) -> bytes:
    # The tests' own Kommo `message[add]` form (main() puts the repository on sys.path).
    from tests.support.factories import message_form

    form = message_form(message_id, text, lead_id=lead_id)
    return urllib.parse.urlencode(form).encode()


async def set_sandbox_rate_limit(client: httpx.AsyncClient, target: Target, enforce: bool) -> str:
    """Switch the sandbox's 7 requests/s limit; say what happened (older sandboxes lack it)."""
    response = await client.post(
        f"{target.kommo_base_url}/sandbox/faults", json={"rate_limit": enforce}
    )
    if response.status_code >= 400:
        return f"not switchable (POST /sandbox/faults answered {response.status_code})"
    return "enforced (7 requests/s)" if enforce else "lifted"


async def create_leads(client: httpx.AsyncClient, target: Target, count: int) -> list[int]:
    from agent_platform.crm.sandbox.store import DEMO_LEAD_ID

    if count <= 0:
        return [DEMO_LEAD_ID]
    headers = {"Authorization": f"Bearer {target.kommo_access_token}"}
    leads: list[int] = []
    while len(leads) < count:
        size = min(KOMMO_BATCH_LIMIT, count - len(leads))
        items = [{"name": f"Bench lead {len(leads) + i + 1}"} for i in range(size)]
        response = await client.post(
            f"{target.kommo_base_url}/api/v4/leads", json=items, headers=headers
        )
        if response.status_code != 200:
            raise BenchError(f"creating leads: {response.status_code} {response.text[:300]}")
        leads += [row["id"] for row in response.json()["_embedded"]["leads"]]
    return leads


async def send_webhook(client: httpx.AsyncClient, url: str, message: Message, body: bytes) -> None:
    message.sent = now()
    try:
        response = await client.post(url, content=body, headers=FORM_HEADERS)
    except httpx.HTTPError as exc:
        message.acked = now()
        message.outcome = type(exc).__name__
        cause = exc.__cause__ or exc.__context__
        message.detail = (
            f"{exc!r} (cause: {cause!r}) {message.acked - message.sent:.3f}s after sending "
            f"message #{message.index}"
        )[:300]
        return
    message.acked = now()
    message.outcome = str(response.status_code)
    if response.status_code == 200:
        receipt = response.json()
        message.accepted = int(receipt.get("accepted", 0))
        message.duplicates = int(receipt.get("duplicates", 0))
    else:
        message.detail = response.text[:300]


CONNECTIONS_PER_CLIENT = 10
# Below uvicorn's 5 s keep-alive timeout: a connection idle that long is closed by the client
# itself, never reused at the moment the server closes it (which resets the request).
CLIENT_KEEPALIVE_EXPIRY = 2.0


def webhook_clients(
    concurrency: int, request_timeout: float
) -> list[tuple[httpx.AsyncClient, int]]:
    """Several small httpx clients with `concurrency` connections between them, with sizes.

    httpcore's pool does work quadratic in its size for every request (it checks every
    connection against every other): one pool of 50 cost the load generator half a core.
    """
    sizes = [CONNECTIONS_PER_CLIENT] * (concurrency // CONNECTIONS_PER_CLIENT)
    if concurrency % CONNECTIONS_PER_CLIENT:
        sizes.append(concurrency % CONNECTIONS_PER_CLIENT)
    return [
        (
            httpx.AsyncClient(
                limits=httpx.Limits(
                    max_connections=size,
                    max_keepalive_connections=size,
                    keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY,
                ),
                timeout=httpx.Timeout(request_timeout),
            ),
            size,
        )
        for size in sizes
    ]


async def offer_load(
    clients: list[tuple[httpx.AsyncClient, int]],
    url: str,
    messages: list[Message],
    bodies: list[bytes],
) -> list[tuple[float, int, int]]:
    """Open loop: each send starts at its scheduled moment (or as soon as a slot is free).

    Message i goes through client i mod len(clients), with as many slots as that client has
    connections. Returns samples (time, requests in flight, sends waiting for a slot) every
    0.25 s, which show whether the offered concurrency was really kept up.
    """
    slots = [asyncio.Semaphore(size) for _, size in clients]
    counts = {"in_flight": 0, "waiting": 0}

    async def send(message: Message, body: bytes) -> None:
        shard = message.index % len(clients)
        counts["waiting"] += 1
        async with slots[shard]:
            counts["waiting"] -= 1
            counts["in_flight"] += 1
            try:
                await send_webhook(clients[shard][0], url, message, body)
            finally:
                counts["in_flight"] -= 1

    samples: list[tuple[float, int, int]] = []

    async def sample() -> None:
        while True:
            samples.append((now(), counts["in_flight"], counts["waiting"]))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    tasks = []
    for message, body in zip(messages, bodies, strict=True):
        delay = message.scheduled - now()
        if delay > 0:
            await asyncio.sleep(delay)
        message.dispatched = now()
        tasks.append(asyncio.create_task(send(message, body)))
    await asyncio.gather(*tasks)
    sampler.cancel()
    return samples


# --------------------------------------------------------------------------- observing notes


def poll_notes(
    notes_url: str,
    after_id: int,
    interval: float,
    max_duty: float,
    stop: Any,
    ready: Any,
    results: Any,
) -> None:
    """In a process of its own: poll GET /sandbox/notes, note when each new note is first seen.

    A separate process, so parsing an ever longer note list never delays the load generator.
    The pause after a poll is at least `interval`, and long enough that polls keep the
    platform busy at most `max_duty` of the time.
    """
    seen: dict[int, tuple[float, int]] = {}
    polls: list[tuple[float, float]] = []
    failures = 0
    with httpx.Client(timeout=30.0) as client:
        while True:
            stopping = stop.is_set()
            started = now()
            try:
                response = client.get(notes_url)
                notes = response.json()["notes"]
            except (httpx.HTTPError, ValueError, KeyError):
                failures += 1
                notes = []
            ended = now()
            polls.append((started, ended))
            for note in notes:
                note_id = note["id"]
                if note_id > after_id and note_id not in seen:
                    seen[note_id] = (ended, note["entity_id"])
            ready.set()
            if stopping:
                break
            stop.wait(max(interval, (ended - started) * (1.0 / max_duty - 1.0)))
    results.send({"seen": seen, "polls": polls, "failures": failures})
    results.close()


class NotePoller:
    def __init__(self, notes_url: str, after_id: int, interval: float, max_duty: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self.ready = context.Event()
        self._receiver, sender = context.Pipe(duplex=False)
        self.process = context.Process(
            target=poll_notes,
            args=(notes_url, after_id, interval, max_duty, self._stop, self.ready, sender),
            name="sandbox-note-poller",
            daemon=True,
        )
        self.process.start()
        sender.close()

    async def finish(self) -> dict[str, Any]:
        self._stop.set()
        result: dict[str, Any] = await asyncio.to_thread(self._receiver.recv)
        await asyncio.to_thread(self.process.join, 30)
        return result


async def sandbox_notes(client: httpx.AsyncClient, target: Target) -> list[dict[str, Any]]:
    response = await client.get(f"{target.kommo_base_url}/sandbox/notes")
    response.raise_for_status()
    notes: list[dict[str, Any]] = response.json()["notes"]
    return notes


# --------------------------------------------------------------------------- the database


async def connect(database_url: str) -> Any:
    import psycopg
    from psycopg.rows import dict_row

    from agent_platform.db.urls import libpq_url

    return await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True, row_factory=dict_row
    )


async def database_facts(db: Any) -> dict[str, Any]:
    """Server version, and the offset of its clock from ours (applied when it matters)."""
    version = (await (await db.execute("SELECT version() AS v")).fetchone())["v"]
    samples = []
    for _ in range(7):
        before = now()
        row = await (
            await db.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS t")
        ).fetchone()
        after = now()
        samples.append((after - before, row["t"] - (before + after) / 2))
    rtt, offset = min(samples)
    backend = (await (await db.execute("SELECT pg_backend_pid() AS p")).fetchone())["p"]
    cursor = await db.execute(
        "SELECT name, setting, unit FROM pg_settings WHERE name = ANY(%s)",
        (["fsync", "synchronous_commit", "shared_buffers", "max_connections", "wal_level"],),
    )
    settings = {
        row["name"]: f"{row['setting']}{row['unit'] or ''}" for row in await cursor.fetchall()
    }
    return {
        "version": version,
        "settings": settings,
        "clock_offset_ms": round(offset * 1000, 3),
        "clock_probe_rtt_ms": round(rtt * 1000, 3),
        # The same machine shares one clock: correct only an offset beyond the probe's error.
        "clock_offset_applied": abs(offset) > max(rtt, 0.002),
        "backend_pid": backend,
    }


async def inbox_progress(db: Any, pattern: str) -> Counter[str]:
    cursor = await db.execute(
        "SELECT status, count(*) AS n FROM inbox_events WHERE dedupe_key LIKE %s GROUP BY status",
        (pattern,),
    )
    return Counter({row["status"]: row["n"] for row in await cursor.fetchall()})


TIMELINE_SQL = """
SELECT e.payload #>> '{message,message_id}' AS message_id,
       extract(epoch FROM e.received_at)::float8 AS received_at,
       e.status AS inbox_status,
       e.error AS inbox_error,
       extract(epoch FROM d.sent_at)::float8 AS note_at,
       d.external_id AS note_id,
       d.attempts AS delivery_attempts,
       j.id AS job_id,
       j.status::text AS job_status,
       j.attempts AS job_attempts,
       ev.deferred_at, ev.started_at, ev.finished_at, ev.retries
  FROM inbox_events e
  LEFT JOIN (
        -- The reply's delivery: its idempotency key ends with the inbox event's id (the
        -- prefix has changed between versions); the one with a CRM id first.
        SELECT DISTINCT ON (event_id) event_id, sent_at, external_id, attempts
          FROM (SELECT substring(idempotency_key FROM '([0-9a-f-]{36})$') AS event_id,
                       sent_at, external_id, attempts
                  FROM crm_deliveries) keyed
         WHERE event_id IS NOT NULL
         ORDER BY event_id, external_id IS NULL, sent_at
  ) d ON d.event_id = e.id::text
  LEFT JOIN procrastinate_jobs j
         ON j.task_name = %(task)s AND j.args ->> 'inbox_event_id' = e.id::text
  LEFT JOIN LATERAL (
        SELECT extract(epoch FROM min(at) FILTER (WHERE type = 'deferred'))::float8
                   AS deferred_at,
               extract(epoch FROM min(at) FILTER (WHERE type = 'started'))::float8
                   AS started_at,
               extract(epoch FROM max(at) FILTER (WHERE type IN ('succeeded', 'failed')))::float8
                   AS finished_at,
               count(*) FILTER (WHERE type = 'deferred_for_retry') AS retries
          FROM procrastinate_events
         WHERE job_id = j.id
  ) ev ON true
 WHERE e.dedupe_key LIKE %(pattern)s
"""


async def fetch_timeline(db: Any, pattern: str, offset: float) -> dict[str, dict[str, Any]]:
    """Per message id: when the platform received it, queued, started, noted and finished it."""
    cursor = await db.execute(TIMELINE_SQL, {"task": REPLY_TASK, "pattern": pattern})
    rows = {}
    for row in await cursor.fetchall():
        for key in ("received_at", "note_at", "deferred_at", "started_at", "finished_at"):
            if row[key] is not None:
                row[key] -= offset  # to our clock
        rows[row["message_id"]] = row
    return rows


# --------------------------------------------------------------------------- CPU accounting


@dataclass
class CpuWatch:
    """CPU seconds used by the platform process, PostgreSQL, the benchmark and the machine."""

    platform_pid: int | None
    postmaster_pid: int | None
    fake_llm_pid: int | None
    bench_pids: list[int]

    def snapshot(self) -> dict[str, Any]:
        import psutil

        def used(process: psutil.Process) -> float:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                return float(times.user + times.system)
            return 0.0

        def tree(pid: int | None) -> dict[int, float]:
            if pid is None:
                return {}
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                return {p.pid: used(p) for p in [root, *root.children(recursive=True)]}
            return {}

        system = psutil.cpu_times()
        return {
            "at": now(),
            "platform": tree(self.platform_pid),
            "postgres": tree(self.postmaster_pid),
            "fake_llm": tree(self.fake_llm_pid),
            "bench": {pid: used(psutil.Process(pid)) for pid in self.bench_pids if _alive(pid)},
            "idle": system.idle + getattr(system, "iowait", 0.0),
            "total": sum(system),
        }

    @staticmethod
    def between(first: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
        wall = last["at"] - first["at"]
        if wall <= 0:
            return {}

        def cores(name: str) -> float:
            spent = sum(t - first[name].get(pid, 0.0) for pid, t in last[name].items())
            return round(spent / wall, 3)

        busy = 1.0 - (last["idle"] - first["idle"]) / max(last["total"] - first["total"], 1e-9)
        known = {
            "platform_process_cores": cores("platform") if last["platform"] else None,
            "postgres_cores": cores("postgres") if last["postgres"] else None,
            "fake_llm_cores": cores("fake_llm") if last["fake_llm"] else None,
            "bench_cores": cores("bench"),
        }
        machine_cores = busy * (os.cpu_count() or 1)
        return {
            "seconds": round(wall, 2),
            **known,
            "machine_busy_share": round(busy, 3),
            # Whatever else ran on the machine meanwhile (other users' processes included).
            "other_processes_cores": round(
                machine_cores - sum(v for v in known.values() if v is not None), 3
            ),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }


def _alive(pid: int) -> bool:
    import psutil

    return bool(psutil.pid_exists(pid))


def postmaster_of(backend_pid: int | None) -> int | None:
    """The PostgreSQL server process, found as the parent of our connection's backend."""
    import psutil

    if backend_pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(backend_pid).ppid())
    return None


# --------------------------------------------------------------------------- raw queue reference


async def raw_queue_rate(
    database_url: str, db: Any, jobs: int, batch: int, concurrency: int
) -> dict[str, Any]:
    """Procrastinate alone: defer `jobs` no-op jobs in batches, then run them with one worker."""
    import logging

    import procrastinate

    from agent_platform.db.urls import libpq_url

    # "App is instantiated in the main Python module": true, and harmless for a benchmark.
    logging.getLogger("procrastinate").setLevel(logging.ERROR)
    await db.execute(
        "DELETE FROM procrastinate_jobs WHERE queue_name = %s AND status <> 'doing'",
        (NOOP_QUEUE,),
    )
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(database_url), min_size=1, max_size=concurrency + 2
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=NOOP_TASK, queue=NOOP_QUEUE)
    async def bench_noop() -> None:
        return None

    async with app.open_async():
        started = time.perf_counter()
        for first in range(0, jobs, batch):
            await bench_noop.batch_defer_async(*({} for _ in range(min(batch, jobs - first))))
        deferred = time.perf_counter()
        await app.run_worker_async(
            queues=[NOOP_QUEUE],
            concurrency=concurrency,
            wait=False,
            install_signal_handlers=False,
            listen_notify=False,
            name="bench-noop-worker",
        )
        finished = time.perf_counter()
    cursor = await db.execute(
        "SELECT status::text AS status, count(*) AS n FROM procrastinate_jobs "
        "WHERE queue_name = %s GROUP BY status",
        (NOOP_QUEUE,),
    )
    statuses = {row["status"]: row["n"] for row in await cursor.fetchall()}
    await db.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s", (NOOP_QUEUE,))
    run_seconds = finished - deferred
    return {
        "jobs": jobs,
        "batch": batch,
        "worker_concurrency": concurrency,
        "queue": NOOP_QUEUE,
        "defer_seconds": round(deferred - started, 3),
        "defer_jobs_per_second": round(jobs / (deferred - started), 1),
        "run_seconds": round(run_seconds, 3),
        "jobs_per_second": round(jobs / run_seconds, 1),
        "final_statuses": statuses,
    }


# --------------------------------------------------------------------------- statistics


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (inf stands for 'never')."""
    rank = max(0, math.ceil(p / 100.0 * len(sorted_values)) - 1)
    return sorted_values[rank]


def distribution_ms(values: Iterable[float], missing: int = 0) -> dict[str, Any]:
    """Percentiles in milliseconds; `missing` values count as infinitely late (null)."""
    finite = sorted(v for v in values if not math.isnan(v))
    ranked = finite + [math.inf] * missing
    if not ranked:
        return {"count": 0}

    def ms(value: float) -> float | None:
        return None if math.isinf(value) else round(value * 1000, 2)

    summary: dict[str, Any] = {"count": len(finite), "missing": missing}
    for name, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99), ("p99_9", 99.9)):
        summary[name] = ms(percentile(ranked, p))
    summary["max"] = ms(ranked[-1])
    summary["min"] = ms(finite[0]) if finite else None
    summary["mean"] = round(sum(finite) / len(finite) * 1000, 2) if finite else None
    return summary


def per_second(times: Iterable[float], start: float, seconds: int) -> list[int]:
    counts = [0] * seconds
    for t in times:
        if t is None or math.isnan(t):
            continue
        index = int(t - start)
        if 0 <= index < seconds:
            counts[index] += 1
    return counts


# --------------------------------------------------------------------------- the run


async def prewarm(
    client: httpx.AsyncClient, target: Target, db: Any, leads: list[int], run_id: str, count: int
) -> None:
    """A few messages one by one, each answered before the next: pools, caches and the LLM
    client are warm, and a broken pipeline shows here rather than as a wall of errors."""
    if count <= 0:
        return
    notes_before = len(await sandbox_notes(client, target))
    for index in range(count):
        message = Message(index, f"bench-{run_id}-warm-{index}", leads[index % len(leads)])
        body = webhook_body(message.message_id, message.lead_id, "Hello, a warm-up question")
        await send_webhook(client, target.webhook_url, message, body)
        if message.outcome != "200":
            raise BenchError(f"warm-up webhook answered {message.outcome}: {message.detail}")
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if db is not None:
            progress = await inbox_progress(db, f"message:bench-{run_id}-warm-%")
            if progress["pending"] == 0 and sum(progress.values()) >= count:
                if progress["handled"] < count:
                    raise BenchError(f"warm-up messages were not all answered: {dict(progress)}")
                return
        elif len(await sandbox_notes(client, target)) >= notes_before + count:
            return
        await asyncio.sleep(0.2)
    raise BenchError("warm-up messages got no reply notes within 60 s")


async def wait_for_drain(
    client: httpx.AsyncClient,
    target: Target,
    db: Any,
    pattern: str,
    expected: int,
    notes_before: int,
    limit_seconds: float,
) -> tuple[float | None, dict[str, int]]:
    """Until every accepted message is handled (or failed): the moment, and the inbox counts."""
    deadline = time.monotonic() + limit_seconds
    progress: Counter[str] = Counter()
    while True:
        if db is not None:
            progress = await inbox_progress(db, pattern)
            if sum(progress.values()) >= expected and progress["pending"] == 0:
                return now(), dict(progress)
        else:
            noted = len(await sandbox_notes(client, target)) - notes_before
            progress = Counter({"noted_in_sandbox": noted})
            if noted >= expected:
                return now(), dict(progress)
        if time.monotonic() > deadline:
            return None, dict(progress)
        await asyncio.sleep(0.2 if db is not None else 1.0)


async def run_benchmark(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    db = await connect(target.database_url) if target.database_url else None
    facts = await database_facts(db) if db is not None else {}
    offset = facts.get("clock_offset_ms", 0.0) / 1000 if facts.get("clock_offset_applied") else 0.0
    run_id = secrets.token_hex(4)
    pattern = f"message:bench-{run_id}-m-%"
    clients = webhook_clients(args.concurrency, args.request_timeout)
    # The sandbox calls (leads, notes) and the warm-up go through a client of their own.
    async with (
        contextlib.AsyncExitStack() as stack,
        httpx.AsyncClient(
            timeout=httpx.Timeout(60.0),
            limits=httpx.Limits(keepalive_expiry=CLIENT_KEEPALIVE_EXPIRY),
        ) as client,
    ):
        for webhook_client, _ in clients:
            await stack.enter_async_context(webhook_client)
        target.settings["sandbox_rate_limit"] = await set_sandbox_rate_limit(
            client, target, enforce=args.kommo_limit == "keep"
        )
        leads = await create_leads(client, target, args.leads)
        await prewarm(client, target, db, leads, run_id, args.prewarm)

        total = math.ceil(args.rate * args.duration)
        messages = [
            Message(i, f"bench-{run_id}-m-{i}", leads[i % len(leads)]) for i in range(total)
        ]
        bodies = [
            webhook_body(m.message_id, m.lead_id, f"Hi! How much is plan {m.index}?")
            for m in messages
        ]
        existing = await sandbox_notes(client, target)
        after_id = max((note["id"] for note in existing), default=0)
        poller = (
            NotePoller(
                f"{target.kommo_base_url}/sandbox/notes",
                after_id,
                args.poll_interval,
                args.poll_max_duty,
            )
            if args.poll_interval > 0
            else None
        )
        watch = CpuWatch(
            platform_pid=target.platform_pid,
            postmaster_pid=postmaster_of(facts.get("backend_pid")),
            fake_llm_pid=target.fake_llm_pid,
            bench_pids=[os.getpid()]
            + ([poller.process.pid] if poller and poller.process.pid else []),
        )
        if poller is not None and not await asyncio.to_thread(poller.ready.wait, 60):
            raise BenchError("the sandbox note poller did not start")
        before = watch.snapshot()
        await asyncio.sleep(1.0)  # what the machine does without our load: others' work
        cpu_start = watch.snapshot()
        load_start = now() + 0.05
        for m in messages:
            m.scheduled = load_start + m.index / args.rate
        concurrency_samples = await offer_load(clients, target.webhook_url, messages, bodies)
        load_end = now()
        cpu_load_end = watch.snapshot()
        accepted = sum(m.accepted for m in messages)
        drained_at, inbox_counts = await wait_for_drain(
            client, target, db, pattern, accepted, len(existing), args.drain_timeout
        )
        cpu_drained = watch.snapshot()
        polled = await poller.finish() if poller is not None else None
        final_notes = await sandbox_notes(client, target)
        timeline = await fetch_timeline(db, pattern, offset) if db is not None else {}
        reference = None
        if db is not None and not args.skip_reference and target.database_url:
            reference = await raw_queue_rate(
                target.database_url, db, args.noop_jobs, args.noop_batch, args.worker_concurrency
            )
    if db is not None:
        await db.close()
    return analyse(
        args,
        target,
        run_id=run_id,
        leads=leads,
        messages=messages,
        load_start=load_start,
        load_end=load_end,
        drained_at=drained_at,
        inbox_counts=inbox_counts,
        timeline=timeline,
        polled=polled,
        after_id=after_id,
        final_notes=final_notes,
        reference=reference,
        concurrency_samples=concurrency_samples,
        database=facts,
        cpu={
            "idle_second_before_load": CpuWatch.between(before, cpu_start),
            "load": CpuWatch.between(cpu_start, cpu_load_end),
            "drain": CpuWatch.between(cpu_load_end, cpu_drained),
        },
    )


# --------------------------------------------------------------------------- analysis


def analyse(
    args: argparse.Namespace,
    target: Target,
    *,
    run_id: str,
    leads: list[int],
    messages: list[Message],
    load_start: float,
    load_end: float,
    drained_at: float | None,
    inbox_counts: dict[str, int],
    timeline: dict[str, dict[str, Any]],
    polled: dict[str, Any] | None,
    after_id: int,
    final_notes: list[dict[str, Any]],
    reference: dict[str, Any] | None,
    concurrency_samples: list[tuple[float, int, int]],
    database: dict[str, Any],
    cpu: dict[str, Any],
) -> dict[str, Any]:
    explanations: list[str] = []
    ok = [m for m in messages if m.outcome == "200"]
    accepted = [m for m in ok if m.accepted]
    outcomes = Counter(m.outcome for m in messages)
    error_samples = sorted({f"{m.outcome}: {m.detail}" for m in messages if m.outcome != "200"})
    last_scheduled = messages[-1].scheduled
    send_seconds = last_scheduled - messages[0].scheduled + 1.0 / args.rate

    if outcomes.get("404"):
        explanations.append(
            f"{outcomes['404']} webhooks got 404 (unknown webhook token): the demo connection "
            "was removed or replaced during the run, typically by another `up --demo` seeding "
            "the same database. Use a database of its own (--private-database)."
        )
    ack = {
        "status_counts": dict(sorted(outcomes.items())),
        "errors": len(messages) - len(ok),
        "accepted_messages": sum(m.accepted for m in ok),
        "duplicates": sum(m.duplicates for m in ok),
        "service_time_ms": distribution_ms(m.acked - m.sent for m in ok),
        "corrected_ms": distribution_ms(m.acked - m.scheduled for m in ok),
        "all_responses_corrected_ms": distribution_ms(m.acked - m.scheduled for m in messages),
        "wait_for_free_slot_ms": distribution_ms(m.sent - m.dispatched for m in messages),
        "bench_dispatch_lag_ms": distribution_ms(m.dispatched - m.scheduled for m in messages),
        "error_samples": error_samples[:10],
        "in_flight_while_sends_waited": _in_flight(concurrency_samples, args.concurrency),
    }
    explanations.append(
        "ack service_time: from the request's start to its response; corrected: from its "
        "scheduled moment (open loop), which also counts time spent waiting for one of the "
        f"{args.concurrency} connections: the honest figure under coordinated omission."
    )

    # Webhook to note, exact per message: the platform records the sandbox note id and the
    # moment it marked the delivery sent, in the transaction right after the sandbox answered.
    seen: dict[int, tuple[float, int]] = {
        int(k): tuple(v)  # type: ignore[misc]
        for k, v in (polled or {}).get("seen", {}).items()
    }
    note_ids_in_sandbox = {note["id"] for note in final_notes}
    exact_from_sent, exact_from_scheduled, observed_from_sent = [], [], []
    stages: dict[str, list[float]] = {
        "webhook_sent_to_transaction_start": [],
        "queue_wait": [],
        "job_start_to_note": [],
        "job_duration": [],
        "note_to_job_end": [],
    }
    missing_exact = missing_observed = 0
    note_times: list[float] = []
    matching = "none"
    if timeline:
        matching = "exact: message id -> inbox event -> delivery (sandbox note id, sent_at)"
        for m in accepted:
            row = timeline.get(m.message_id)
            note_at = row["note_at"] if row else None
            if note_at is None:
                missing_exact += 1
                missing_observed += 1
                continue
            note_times.append(note_at)
            exact_from_sent.append(note_at - m.sent)
            exact_from_scheduled.append(note_at - m.scheduled)
            first_seen = seen.get(row["note_id"])
            if first_seen is None:
                missing_observed += 1
            else:
                observed_from_sent.append(first_seen[0] - m.sent)
            if row["deferred_at"] is not None:
                stages["webhook_sent_to_transaction_start"].append(row["deferred_at"] - m.sent)
                if row["started_at"] is not None:
                    stages["queue_wait"].append(row["started_at"] - row["deferred_at"])
            if row["started_at"] is not None:
                stages["job_start_to_note"].append(note_at - row["started_at"])
                if row["finished_at"] is not None:
                    stages["job_duration"].append(row["finished_at"] - row["started_at"])
                    stages["note_to_job_end"].append(row["finished_at"] - note_at)
    else:
        # No database to read: the n-th new note on a lead is taken for the n-th message sent
        # to that lead. Replies to one lead may finish out of order, so this is approximate.
        matching = "approximate: n-th new sandbox note on a lead <-> n-th accepted webhook to it"
        by_lead: dict[int, list[float]] = {}
        for note_id in sorted(seen):
            seen_at, lead = seen[note_id]
            by_lead.setdefault(lead, []).append(seen_at)
        position: Counter[int] = Counter()
        for m in sorted(accepted, key=lambda m: m.sent):
            arrivals = by_lead.get(m.lead_id, [])
            k = position[m.lead_id]
            position[m.lead_id] += 1
            if k < len(arrivals):
                observed_from_sent.append(arrivals[k] - m.sent)
                note_times.append(arrivals[k])
            else:
                missing_observed += 1
        missing_exact = len(accepted)
    polls = (polled or {}).get("polls", [])
    poll_durations = [end - start for start, end in polls]
    poll_span = (polls[-1][1] - polls[0][0]) if len(polls) > 1 else 0.0
    poller = {
        "polls": len(polls),
        "failures": (polled or {}).get("failures", 0),
        "poll_request_ms": distribution_ms(poll_durations),
        "mean_interval_ms": round(poll_span / max(len(polls) - 1, 1) * 1000, 1),
        "busy_share": round(sum(poll_durations) / poll_span, 3) if poll_span else None,
        "notes_seen": len(seen),
    }
    explanations.append(
        "webhook_to_note.exact: from sending the webhook to the platform's sent_at of its "
        "reply delivery (PostgreSQL now() of the transaction right after the sandbox answered "
        "the note POST), with the note id checked against the sandbox after the run. "
        "sandbox_observed: until a poll of GET /sandbox/notes first showed that note; an upper "
        "bound, coarse by the poll interval, which grows as the note list grows "
        "(see sandbox_poller)."
    )

    our_leads = set(leads)
    new_notes_on_our_leads = [
        n for n in final_notes if n["id"] > after_id and n["entity_id"] in our_leads
    ]
    delivered_ids = {row["note_id"] for row in timeline.values() if row["note_id"] is not None}
    note = {
        "matching": matching,
        "exact_from_sent_ms": distribution_ms(exact_from_sent, missing_exact) if timeline else None,
        "exact_from_scheduled_ms": distribution_ms(exact_from_scheduled, missing_exact)
        if timeline
        else None,
        "sandbox_observed_from_sent_ms": distribution_ms(observed_from_sent, missing_observed)
        if polled is not None
        else None,
        "messages_without_note": missing_exact if timeline else missing_observed,
        "new_notes_in_sandbox_on_bench_leads": len(new_notes_on_our_leads),
        "deliveries_marked_sent": sum(1 for row in timeline.values() if row["note_at"]),
        "deliveries_with_note_id": len(delivered_ids),
        "delivered_note_ids_found_in_sandbox": len(delivered_ids & note_ids_in_sandbox),
    }
    if len(delivered_ids - note_ids_in_sandbox):
        explanations.append(
            f"{len(delivered_ids - note_ids_in_sandbox)} deliveries name a note id the sandbox "
            "does not have: the reply went elsewhere (another sandbox, or another channel)."
        )
    if timeline and len(new_notes_on_our_leads) > len(delivered_ids):
        explanations.append(
            f"{len(new_notes_on_our_leads) - len(delivered_ids)} more notes than deliveries on "
            "the bench's leads: some reply was sent twice (or another client wrote notes)."
        )

    job_statuses = Counter(row["job_status"] for row in timeline.values())
    retried = sum(1 for row in timeline.values() if (row["retries"] or 0) > 0)
    failures = Counter(
        (row["inbox_error"] or "")[:200] for row in timeline.values() if row["inbox_error"]
    )
    jobs = {
        "inbox_status_counts": inbox_counts,
        "job_status_counts": dict(job_statuses),
        "jobs_retried": retried,
        "delivery_attempts_over_1": sum(
            1 for row in timeline.values() if (row["delivery_attempts"] or 0) > 1
        ),
        "top_errors": failures.most_common(5),
        "drained": drained_at is not None,
    }

    window_start = load_start + args.warmup
    window_end = last_scheduled + 1.0 / args.rate
    window = window_end - window_start
    notes_in_window = sum(1 for t in note_times if window_start <= t < window_end)
    accepted_in_window = sum(1 for m in accepted if window_start <= m.acked < window_end)
    notes_by_load_end = sum(1 for t in note_times if t < load_end)
    accepted_by_load_end = len(accepted)
    last_note = max(note_times, default=math.nan)
    last_ack = max((m.acked for m in messages), default=math.nan)
    drain_seconds = max(0.0, last_note - last_ack) if note_times else None
    after_load = [t for t in note_times if t >= last_ack]
    sustained = notes_in_window / window if window > 0 else math.nan
    backlog = accepted_by_load_end - notes_by_load_end
    kept_up = backlog <= max(5, args.rate * 0.5)
    throughput = {
        "offered_rate_per_second": args.rate,
        "achieved_send_rate_per_second": round(len(messages) / send_seconds, 1),
        "accepted_per_second_in_window": round(accepted_in_window / window, 1),
        "window_seconds": [round(args.warmup, 2), round(window_end - load_start, 2)],
        "sustained_notes_per_second": round(sustained, 1),
        "backlog_at_load_end": backlog,
        "kept_up_with_offered_load": kept_up,
        "drain_seconds_after_last_ack": round(drain_seconds, 2)
        if drain_seconds is not None
        else None,
        "notes_per_second_while_draining": round(len(after_load) / (last_note - last_ack), 1)
        if len(after_load) > 1 and last_note > last_ack
        else None,
        "total_notes": len(note_times),
    }
    spent = {"platform": 0.0, "postgres": 0.0}
    for phase in ("load", "drain"):
        figures = cpu.get(phase) or {}
        for name in spent:
            cores = figures.get(f"{name}_process_cores" if name == "platform" else f"{name}_cores")
            spent[name] += (cores or 0.0) * figures.get("seconds", 0.0)
    if note_times:
        throughput["platform_process_cpu_ms_per_message"] = round(
            spent["platform"] / len(note_times) * 1000, 1
        )
        throughput["postgres_cpu_ms_per_message"] = round(
            spent["postgres"] / len(note_times) * 1000, 1
        )
    explanations.append(
        "sustained_notes_per_second: reply notes created per second from the end of the "
        f"warm-up ({args.warmup:g} s) to the end of sending; when the backlog grew it is the "
        "pipeline's capacity under load, otherwise only a lower bound on it (the offered load "
        "was the limit). notes_per_second_while_draining: the capacity with no webhooks coming."
    )

    seconds = max(1, math.ceil((max(last_note, last_ack) if note_times else last_ack) - load_start))
    timeline_per_second = {
        "start_epoch": round(load_start, 3),
        "offered": per_second((m.scheduled for m in messages), load_start, seconds),
        "acked_200": per_second((m.acked for m in ok), load_start, seconds),
        "errors": per_second(
            (m.acked for m in messages if m.outcome != "200"), load_start, seconds
        ),
        "jobs_started": per_second(
            (row["started_at"] for row in timeline.values() if row["started_at"]),
            load_start,
            seconds,
        ),
        "notes": per_second(note_times, load_start, seconds),
    }
    queued = 0
    depth = []
    deferred_per_s = per_second(
        (row["deferred_at"] for row in timeline.values() if row["deferred_at"]), load_start, seconds
    )
    for added, taken in zip(deferred_per_s, timeline_per_second["jobs_started"], strict=True):
        queued += added - taken
        depth.append(queued)
    timeline_per_second["queue_depth_at_second_end"] = depth

    goals = []
    ack_p99 = ack["corrected_ms"].get("p99")
    goals.append(
        {
            "goal": "webhook ack p99 < 50 ms at 200 req/s",
            "value_ms": ack_p99,
            "service_time_p99_ms": ack["service_time_ms"].get("p99"),
            "offered_rate": args.rate,
            "met": bool(
                ack_p99 is not None
                and ack_p99 < GOAL_ACK_P99_MS
                and args.rate >= GOAL_ACK_RATE
                and ack["errors"] == 0
            ),
            "basis": "corrected (from scheduled send time) p99 of 200 responses; any error or a "
            "rate below 200 req/s fails it",
        }
    )
    note_p95 = (note["exact_from_sent_ms"] or note["sandbox_observed_from_sent_ms"] or {}).get(
        "p95"
    )
    goals.append(
        {
            "goal": "webhook-to-note p95 < 300 ms",
            "value_ms": note_p95,
            "met": bool(note_p95 is not None and note_p95 < GOAL_NOTE_P95_MS),
            "basis": "exact webhook_to_note from send time; a message with no note counts as never"
            if timeline
            else "sandbox-observed (approximate matching)",
        }
    )
    raw_rate = reference["jobs_per_second"] if reference else None
    goals.append(
        {
            "goal": "pipeline throughput >= half the raw engine rate",
            "value_notes_per_second": throughput["sustained_notes_per_second"],
            "raw_noop_jobs_per_second": raw_rate,
            "ratio": round(sustained / raw_rate, 3) if raw_rate else None,
            "met": bool(raw_rate and sustained >= GOAL_THROUGHPUT_SHARE * raw_rate),
            "basis": "sustained notes/s after warm-up vs Procrastinate no-op jobs/s, same "
            "database and worker concurrency"
            + ("" if not kept_up else "; the pipeline kept up, so its figure is a lower bound"),
        }
    )

    return {
        "benchmark": "webhook_to_reply",
        "run_id": run_id,
        "parameters": {
            "rate": args.rate,
            "concurrency": args.concurrency,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "leads": len(leads) if args.leads > 0 else "demo lead only",
            "messages": len(messages),
            "prewarm": args.prewarm,
            "poll_interval_s": args.poll_interval,
            "poll_max_duty": args.poll_max_duty,
            "drain_timeout_s": args.drain_timeout,
            "noop_jobs": args.noop_jobs,
            "noop_batch": args.noop_batch,
            "worker_concurrency": args.worker_concurrency,
            "request_timeout_s": args.request_timeout,
            "kommo_limit": args.kommo_limit,
            "http_clients": math.ceil(args.concurrency / CONNECTIONS_PER_CLIENT),
            "connections_per_client": CONNECTIONS_PER_CLIENT,
            "client_keepalive_expiry_s": CLIENT_KEEPALIVE_EXPIRY,
        },
        "target": {
            "instance": "started by the benchmark" if target.started else "attached (--demo-json)",
            "api_url": target.api_url,
            "kommo_base_url": target.kommo_base_url,
            "database": target.database_kind,
            "database_url": _redact(target.database_url),
            "settings": target.settings,
        },
        "webhook_ack": ack,
        "webhook_to_note": note,
        "stages_ms": {name: distribution_ms(values) for name, values in stages.items()},
        "jobs": jobs,
        "throughput": throughput,
        "reference_noop_queue": reference,
        "goals": goals,
        "cpu_cores_used": cpu,
        "sandbox_poller": poller,
        "timeline_per_second": timeline_per_second,
        "database": {k: v for k, v in database.items() if k != "backend_pid"},
        "explanations": explanations,
    }


def _in_flight(samples: list[tuple[float, int, int]], limit: int) -> dict[str, Any]:
    """Requests in flight, sampled while other sends waited for a slot: should be the limit."""
    backlogged = sorted(in_flight for _, in_flight, waiting in samples if waiting > 0)
    if not backlogged:
        return {"samples": 0}
    return {
        "samples": len(backlogged),
        "min": backlogged[0],
        "p50": percentile(backlogged, 50),
        "share_of_samples_below_limit": round(
            sum(1 for n in backlogged if n < limit) / len(backlogged), 3
        ),
    }


def _redact(url: str | None) -> str | None:
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


# --------------------------------------------------------------------------- machine, log, output


def platform_log_summary(path: Path | None) -> dict[str, Any] | None:
    """Warnings and errors the started platform logged (JSON lines on stderr)."""
    if path is None or not path.exists():
        return None
    levels: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    samples: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            # Announcements for the terminal (one holds the demo login) are left out; lines
            # that look like trouble are kept.
            text = line.strip()
            if text and any(w in text.lower() for w in ("warn", "error", "traceback", "exc")):
                levels["non_json"] += 1
                messages[text[:240]] += 1
            continue
        level = str(entry.get("level", "?"))
        levels[level] += 1
        if level in ("warning", "error", "critical"):
            messages[f"{level}: {entry.get('message')} {entry.get('error', '')}"[:240]] += 1
            if len(samples) < 3 and entry.get("exception"):
                samples.append(str(entry["exception"])[-1500:])
    return {
        "lines_by_level": dict(levels),
        "top_messages": messages.most_common(10),
        "exception_samples": samples,
    }


def _fmt(dist: dict[str, Any] | None, *keys: str) -> str:
    if not dist or not dist.get("count"):
        return "n/a"
    parts = []
    for key in keys:
        value = dist.get(key)
        parts.append(f"{key} {'never' if value is None else f'{value:.1f}'}")
    missing = dist.get("missing")
    return " · ".join(parts) + (f"  ({missing} missing)" if missing else "") + " ms"


def print_summary(results: dict[str, Any], path: Path) -> None:
    p, ack, note = results["parameters"], results["webhook_ack"], results["webhook_to_note"]
    th, ref, jobs = results["throughput"], results["reference_noop_queue"], results["jobs"]
    machine = results["machine"]
    lines = [
        "",
        "Webhook to reply benchmark",
        f"  target        {results['target']['instance']}, database "
        f"{results['target']['database']} ({results['database'].get('version', '?')[:18]})",
        f"  machine       {machine['cpu_model']} x{machine['cpu_count']}, "
        f"{machine['memory_gib']} GiB, Python {machine['python']}",
        f"  load          {p['rate']:g} req/s x {p['duration_s']:g} s = {p['messages']} "
        f"webhooks, concurrency {p['concurrency']}, leads: {p['leads']}",
        "",
        f"  webhook ack   statuses {ack['status_counts']}, accepted {ack['accepted_messages']}",
        f"    service     {_fmt(ack['service_time_ms'], 'p50', 'p95', 'p99', 'max')}",
        f"    corrected   {_fmt(ack['corrected_ms'], 'p50', 'p95', 'p99', 'max')}",
        f"  webhook→note  ({note['matching'].split(':')[0]})",
        f"    exact       {_fmt(note['exact_from_sent_ms'], 'p50', 'p95', 'p99', 'max')}",
        f"    observed    {_fmt(note['sandbox_observed_from_sent_ms'], 'p50', 'p95', 'max')}"
        f"  (poll every ~{results['sandbox_poller']['mean_interval_ms']} ms)",
    ]
    for name, dist in results["stages_ms"].items():
        lines.append(f"    {name:<33} {_fmt(dist, 'p50', 'p95', 'max')}")
    lines += [
        f"  jobs          {jobs['job_status_counts']}, retried {jobs['jobs_retried']}, "
        f"inbox {jobs['inbox_status_counts']}",
        f"  throughput    {th['sustained_notes_per_second']} notes/s sustained "
        f"(accepted {th['accepted_per_second_in_window']}/s), backlog at end of load "
        f"{th['backlog_at_load_end']}, drain {th['drain_seconds_after_last_ack']} s "
        f"({th['notes_per_second_while_draining']} notes/s while draining)",
    ]
    if ref:
        lines.append(
            f"  raw queue     {ref['jobs_per_second']} no-op jobs/s with concurrency "
            f"{ref['worker_concurrency']} (defer {ref['defer_jobs_per_second']} jobs/s)"
        )
    for phase in ("idle_second_before_load", "load", "drain"):
        cpu = results["cpu_cores_used"].get(phase) or {}
        lines.append(
            f"  CPU {phase[:4]:<9} cores: platform {cpu.get('platform_process_cores')}, "
            f"postgres {cpu.get('postgres_cores')}, fake LLM {cpu.get('fake_llm_cores')}, "
            f"bench {cpu.get('bench_cores')}, other processes "
            f"{cpu.get('other_processes_cores')} (machine busy {cpu.get('machine_busy_share')})"
        )
    lines.append("  goals")
    for goal in results["goals"]:
        shown = goal.get("value_ms", goal.get("value_notes_per_second"))
        lines.append(f"    [{'met' if goal['met'] else 'NOT met'}] {goal['goal']}: {shown}")
    lines.append(f"  results       {path}")
    print("\n".join(lines))


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    if args.serve_fake_llm:
        serve_fake_llm(args.serve_fake_llm)
        return 0
    cleanup = Cleanup()
    started_at = datetime.now(UTC)
    machine = machine_details()  # before the run: the commit measured, not a later one
    target: Target | None = None
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    try:
        target = attach_target(args, cleanup) if args.demo_json else start_target(args, cleanup)
        results = asyncio.run(run_benchmark(args, target))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        if target is not None and target.log_path is not None:
            print(f"--- platform log (tail) ---\n{_tail(target.log_path)}", file=sys.stderr)
        return 1
    finally:
        cleanup.stop_processes()
        log_summary = platform_log_summary(target.log_path if target else None)
        cleanup.drop_private_database()
        cleanup.remove_files()
    results["started_at"] = started_at.isoformat()
    results["finished_at"] = datetime.now(UTC).isoformat()
    results["machine"] = machine
    results["machine"]["postgresql"] = results["database"].get("version")
    results["machine"]["before_start"] = quiet
    results["platform_log"] = log_summary
    if args.keep_data_dir and target is not None:
        results["target"]["data_dir"] = str(target.data_dir)
    path = write_results("webhook_to_reply", results, args.results_dir)
    print_summary(results, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
