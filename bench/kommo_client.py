"""Kommo client: the request rate one Kommo account sustains, and the webhook ingest rate.

Kommo allows 7 API requests per second per account and answers more with 429. The platform's
processes share that budget through a rate limiter in Redis (kit/rate_limit.py). This runs the
Kommo sandbox (`agent-platform kommo sandbox`, its 7 requests/s limit on) and, in each scenario,
worker processes calling `GET /api/v4/account` through KommoClient as fast as their limiter
lets them, for `--duration` seconds:

* 1 process, and 3 processes, sharing one account through the Redis-backed limiter;
* for contrast, 3 processes each with its own in-process limiter (no Redis), which together
  offer three times Kommo's budget.

Per scenario: calls completed, the rate the sandbox accepted, the 429s it answered (and the
ones the clients counted), and the most requests that arrived in any one second, from the
sandbox's own request log.

Then the webhook side, the rate at which Kommo's `message[add]` webhooks are taken in:

* parse only: form decoding and `read_webhook` in this process;
* parse + inbox insert + job defer through the api over HTTP: `agent-platform api` alone (no
  worker: the jobs stay queued) on a database of its own, `--ingest-concurrency` senders
  posting as fast as they are answered.

Results go to bench/results/kommo_client-<UTC timestamp>.json with the machine's details.

    .venv/bin/python bench/kommo_client.py --redis-url redis://127.0.0.1:6379/0 \\
        --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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
STARTUP_TIMEOUT = 120.0


@dataclass(frozen=True)
class Scenario:
    name: str
    processes: int
    shared_through_redis: bool


SCENARIOS = (
    Scenario("1 process, limiter shared through Redis", 1, True),
    Scenario("3 processes, limiter shared through Redis", 3, True),
    Scenario("3 processes, each its own limiter (no Redis)", 3, False),
)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of calls per scenario (20)"
    )
    parser.add_argument(
        "--tasks", type=int, default=4, help="concurrent calls in each worker process (4)"
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        help="the Redis the limiter shares its log through (REDIS_URL, else the local one)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="a PostgreSQL server for the ingest run: a database is created on it for the run "
        "and dropped after (DATABASE_URL); without it the ingest over HTTP is skipped",
    )
    parser.add_argument(
        "--ingest-duration", type=float, default=10.0, help="seconds of webhooks (10)"
    )
    parser.add_argument(
        "--ingest-concurrency", type=int, default=16, help="webhook requests in flight (16)"
    )
    parser.add_argument(
        "--parse-count", type=int, default=20_000, help="webhooks parsed in process (20000)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=30.0,
        help="wait up to this many seconds for a second in which the machine is less than "
        "25%% busy before starting; 0 skips (30)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if min(args.duration, args.ingest_duration) <= 0:
        parser.error("--duration and --ingest-duration must be positive")
    if min(args.tasks, args.ingest_concurrency, args.parse_count) < 1:
        parser.error("--tasks, --ingest-concurrency and --parse-count must be at least 1")
    return args


# --------------------------------------------------------------------------- request rate


@dataclass(frozen=True)
class WorkerPlan:
    sandbox_url: str
    token: str
    account_key: str  # the limiter's key: the same in every process of a scenario
    redis_url: str | None  # None: this process's own limiter
    tasks: int
    duration: float


# Every worker process of a scenario waits here, ready to call, until all of them are: a
# process that is slow to start must not shorten the time the processes really overlap.
_start_line: Any = None


def _join_start_line(barrier: Any) -> None:
    global _start_line
    _start_line = barrier


def run_worker(plan: WorkerPlan) -> dict[str, Any]:
    """One worker process: calls through KommoClient until `duration` is over (picklable)."""
    return asyncio.run(_calls(plan))


async def _calls(plan: WorkerPlan) -> dict[str, Any]:
    from prometheus_client import REGISTRY
    from redis.asyncio import Redis

    from agent_platform.crm.kommo.api.transport import AfterRequest
    from agent_platform.crm.kommo.client import KommoClient
    from agent_platform.crm.kommo.errors import KommoError
    from agent_platform.crm.sandbox.faults import KOMMO_REQUESTS_PER_SECOND
    from agent_platform.kit.rate_limit import create_rate_limiter
    from agent_platform.services import KOMMO_RATE_WINDOW_SECONDS

    redis = Redis.from_url(plan.redis_url, socket_timeout=2) if plan.redis_url else None
    limiter = create_rate_limiter(redis, KOMMO_REQUESTS_PER_SECOND, KOMMO_RATE_WINDOW_SECONDS)

    # As the platform's session.rate_limit_hook does, without its database-bound services.
    async def take_turn() -> AfterRequest:
        return (await limiter.acquire(plan.account_key)).done

    completed = 0
    failed: Counter[str] = Counter()
    async with httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as http:
        kommo = KommoClient(plan.sandbox_url, plan.token, http, before_request=take_turn)
        await asyncio.to_thread(_start_line.wait)
        deadline = time.monotonic() + plan.duration

        async def call_until_deadline() -> None:
            nonlocal completed
            while time.monotonic() < deadline:
                try:
                    await kommo.account.get()
                    completed += 1
                except KommoError as exc:
                    failed[type(exc).__name__] += 1

        await asyncio.gather(*(call_until_deadline() for _ in range(plan.tasks)))
    if redis is not None:
        await redis.aclose()
    rate_limited = {"reason": "rate_limited"}
    return {
        "calls_completed": completed,
        "calls_failed": dict(failed),
        "responses_429": REGISTRY.get_sample_value("kommo_responses_429_total") or 0,
        "retry_waits": REGISTRY.get_sample_value("kommo_retry_wait_seconds_count", rate_limited)
        or 0,
    }


def measure_rate(
    args: argparse.Namespace, sandbox_url: str, token: str, run_id: str, scenario: Scenario
) -> dict[str, Any]:
    from tests.support.kommo_oauth import most_in_any_window

    with httpx.Client(base_url=sandbox_url, timeout=30.0) as sandbox:
        for method, path in (
            ("POST", "/sandbox/reset"),
            ("DELETE", "/sandbox/faults"),  # the defaults: the 7 requests/s limit on
            ("DELETE", "/sandbox/faults/requests"),
        ):
            sandbox.request(method, path).raise_for_status()
        plan = WorkerPlan(
            sandbox_url=sandbox_url,
            token=token,
            # A key of its own, so that no earlier scenario's turns count against this one.
            account_key=f"bench-kommo-{run_id}-{secrets.token_hex(4)}",
            redis_url=args.redis_url if scenario.shared_through_redis else None,
            tasks=args.tasks,
            duration=args.duration,
        )
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=scenario.processes,
            mp_context=spawn,
            initializer=_join_start_line,
            initargs=(spawn.Barrier(scenario.processes),),
        ) as pool:
            reports = list(pool.map(run_worker, [plan] * scenario.processes))
        arrivals = sandbox.get("/sandbox/faults/requests").json()["requests"]
    accepted = [arrival["at"] for arrival in arrivals if arrival["status"] == 200]
    span = max(accepted) - min(accepted) if len(accepted) > 1 else 0.0
    return {
        "scenario": scenario.name,
        **asdict(scenario),
        "calls_completed": sum(r["calls_completed"] for r in reports),
        "calls_failed": dict(sum((Counter(r["calls_failed"]) for r in reports), Counter())),
        "requests_arrived": len(arrivals),
        "statuses": dict(Counter(str(arrival["status"]) for arrival in arrivals)),
        # n requests span n - 1 intervals.
        "accepted_per_second": round((len(accepted) - 1) / span, 2) if span else None,
        "accepted_span_seconds": round(span, 2),
        "responses_429_sent_by_the_sandbox": sum(1 for a in arrivals if a["status"] == 429),
        "responses_429_counted_by_the_clients": sum(r["responses_429"] for r in reports),
        "client_waits_after_429": sum(r["retry_waits"] for r in reports),
        "most_requests_arriving_in_any_second": most_in_any_window([a["at"] for a in arrivals]),
        "most_accepted_in_any_second": most_in_any_window(accepted),
        "per_process": reports,
    }


@contextmanager
def running_sandbox(log_dir: Path) -> Iterator[tuple[str, str]]:
    """`agent-platform kommo sandbox` on a free port: (its URL, its access token)."""
    port, token = free_port(), secrets.token_urlsafe(16)
    with (log_dir / "sandbox.log").open("wb") as log:
        process = subprocess.Popen(
            [str(platform_cli()), "kommo", "sandbox", "--port", str(port), "--token", token],
            cwd=log_dir,
            env=platform_env(LOG_LEVEL="WARNING"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/sandbox/faults", timeout=2).status_code == 200,
            STARTUP_TIMEOUT,
            "the Kommo sandbox",
            process,
        )
        yield url, token
    finally:
        stop_process(process, "Kommo sandbox", timeout=10.0)


# --------------------------------------------------------------------------- webhook ingest


def webhook_body(message_id: str) -> bytes:
    # The tests' own Kommo `message[add]` form (main() puts the repository on sys.path).
    from tests.support.factories import message_form

    from agent_platform.crm.sandbox.store import DEMO_LEAD_ID

    form = message_form(message_id, "Hi! How much is the premium plan?", lead_id=DEMO_LEAD_ID)
    return urllib.parse.urlencode(form).encode()


def measure_parsing(count: int, run_id: str) -> dict[str, Any]:
    """Form decoding and `read_webhook`, the platform's own share of taking a webhook in."""
    from agent_platform.crm.kommo.webhooks import read_webhook

    bodies = [webhook_body(f"bench-kc-{run_id}-parse-{n}") for n in range(count)]
    started = time.perf_counter()
    for body in bodies:
        read_webhook(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
    seconds = time.perf_counter() - started
    return {
        "webhooks": count,
        "seconds": round(seconds, 3),
        "webhooks_per_second": round(count / seconds),
        "what": "urllib.parse.parse_qsl + crm.kommo.webhooks.read_webhook, one process",
    }


async def post_webhooks(url: str, run_id: str, concurrency: int, duration: float) -> dict[str, Any]:
    """`concurrency` senders, each posting its next webhook as soon as the last is answered."""
    numbers = itertools.count()
    statuses: Counter[str] = Counter()
    latencies: list[float] = []
    accepted = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30.0)) as client:
        deadline = time.perf_counter() + duration

        async def sender() -> None:
            nonlocal accepted
            while time.perf_counter() < deadline:
                body = webhook_body(f"bench-kc-{run_id}-http-{next(numbers)}")
                sent = time.perf_counter()
                response = await client.post(url, content=body, headers=FORM_HEADERS)
                latencies.append(time.perf_counter() - sent)
                statuses[str(response.status_code)] += 1
                if response.status_code == 200:
                    accepted += int(response.json()["accepted"])

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    if len(latencies) < 2:
        raise BenchError(f"only {len(latencies)} webhook answered in {seconds:.1f}s")
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "statuses": dict(statuses),
        "messages_accepted": accepted,
        "seconds": round(seconds, 3),
        "webhooks_per_second": round(accepted / seconds, 1),
        "latency_ms": {
            "p50": round(cuts[49] * 1000, 1),
            "p99": round(cuts[98] * 1000, 1),
            "max": round(max(latencies) * 1000, 1),
        },
    }


def measure_ingest(args: argparse.Namespace, run_id: str, work_dir: Path) -> dict[str, Any]:
    """Webhooks through `agent-platform api` over HTTP, into a database made for this run."""
    import psycopg

    from agent_platform.db.urls import libpq_url

    database_url, database_name = create_database(args.database_url, "bench_kc")
    data_dir = work_dir / "platform"
    data_dir.mkdir()
    api_port, sandbox_port = free_port(), free_port()
    env = platform_env(
        DATA_DIR=str(data_dir),
        DATABASE_URL=database_url,
        ENVIRONMENT="development",
        LOG_LEVEL="WARNING",
        LOG_FORMAT="json",
        WORKER_HEALTH_PORT=str(free_port()),
    )
    api_url = f"http://127.0.0.1:{api_port}"
    address = ["--host", "127.0.0.1", "--port", str(api_port)]
    try:
        # `up --demo` migrates and seeds the demo connection whose webhook URL we post to; it
        # is stopped before the run so that no worker takes the queued jobs meanwhile.
        seeding = ["up", "--demo", *address, "--sandbox-port", str(sandbox_port)]
        with _platform(seeding, env, data_dir) as up:
            wait_until(lambda: (data_dir / "demo.json").exists(), STARTUP_TIMEOUT, "up", up)
        demo = json.loads((data_dir / "demo.json").read_text())
        with _platform(["api", *address], env, data_dir) as api:
            wait_until(
                lambda: httpx.get(f"{api_url}/api/health/live", timeout=2).status_code == 200,
                STARTUP_TIMEOUT,
                "api",
                api,
            )
            asyncio.run(post_webhooks(demo["webhook_url"], f"{run_id}-warm", 4, 1.0))
            measured = asyncio.run(
                post_webhooks(
                    demo["webhook_url"], run_id, args.ingest_concurrency, args.ingest_duration
                )
            )
        with psycopg.connect(libpq_url(database_url)) as db:
            written = db.execute(INGESTED_SQL, (f"message:bench-kc-{run_id}-http-%",)).fetchone()
    finally:
        drop_database(args.database_url, database_name)
    inbox_rows, queued_jobs = written or (None, None)
    return {
        **measured,
        "inbox_rows_written": inbox_rows,
        "reply_jobs_queued": queued_jobs,
        "what": "POST /webhooks/kommo/{token} to `agent-platform api` (no worker), "
        f"{args.ingest_concurrency} in flight: form parsing, inbox insert and job defer in "
        "one transaction, answered 200",
    }


# The measured webhooks' inbox rows, and the reply jobs deferred with them.
INGESTED_SQL = """
SELECT count(*), count(j.id)
  FROM inbox_events e
  LEFT JOIN procrastinate_jobs j ON j.args ->> 'inbox_event_id' = e.id::text
 WHERE e.dedupe_key LIKE %s
"""


@contextmanager
def _platform(
    command: list[str], env: dict[str, str], data_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """`agent-platform *command` in `data_dir`, stopped on leaving; its log's tail on failure."""
    name = command[0]
    with (data_dir / f"{name}.log").open("wb") as log:
        # cwd is the data directory so that no stray .env file changes the settings.
        process = subprocess.Popen(
            [str(platform_cli()), *command],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    except BenchError as exc:
        tail = (data_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        raise BenchError(f"{exc}\n--- agent-platform {name} log (tail) ---\n{tail}") from None
    finally:
        stop_process(process, f"agent-platform {name}", timeout=60.0)


# --------------------------------------------------------------------------- main


def print_summary(results: dict[str, Any], path: Path) -> None:
    lines = ["", "Kommo client benchmark"]
    for rate in results["kommo_rate"]:
        lines.append(
            f"  {rate['scenario']:<46} {rate['accepted_per_second']} req/s accepted, "
            f"429s {rate['responses_429_sent_by_the_sandbox']}, "
            f"most in any second {rate['most_requests_arriving_in_any_second']}"
        )
    parsing, ingest = results["webhook_parse_only"], results["webhook_ingest_over_http"]
    lines.append(f"  webhook parse only           {parsing['webhooks_per_second']} webhooks/s")
    if "webhooks_per_second" in ingest:
        lines.append(
            f"  webhook parse+insert+defer   {ingest['webhooks_per_second']} webhooks/s "
            f"(p50 {ingest['latency_ms']['p50']} ms, p99 {ingest['latency_ms']['p99']} ms)"
        )
    lines.append(f"  results                      {path}")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    started_at = datetime.now(UTC)
    machine = machine_details()  # before the run: the commit measured, not a later one
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    run_id = secrets.token_hex(4)
    work_dir = Path(tempfile.mkdtemp(prefix="bench-kommo-client-"))
    try:
        with running_sandbox(work_dir) as (sandbox_url, token):
            rates = [
                measure_rate(args, sandbox_url, token, run_id, scenario) for scenario in SCENARIOS
            ]
        parsing = measure_parsing(args.parse_count, run_id)
        ingest = (
            measure_ingest(args, run_id, work_dir)
            if args.database_url
            else {"skipped": "no --database-url (or DATABASE_URL) to create a database on"}
        )
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    results = {
        "benchmark": "kommo_client",
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "parameters": {
            "duration_s": args.duration,
            "tasks_per_process": args.tasks,
            "redis_url": args.redis_url,
            "ingest_duration_s": args.ingest_duration,
            "ingest_concurrency": args.ingest_concurrency,
            "parse_count": args.parse_count,
            "sandbox": "agent-platform kommo sandbox, its own process, 7 requests/s enforced",
            "call": "GET /api/v4/account through KommoClient",
        },
        "kommo_rate": rates,
        "webhook_parse_only": parsing,
        "webhook_ingest_over_http": ingest,
        "machine": {**machine, "before_start": quiet},
    }
    path = write_results("kommo_client", results, args.results_dir)
    print_summary(results, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
