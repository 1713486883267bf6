"""Dashboard pages: the server's time for GET /app (the dashboard) and GET /app/agents (the
agents list) with 10,000 conversations in the organization.

A database of the run's own is migrated and filled in SQL (generate_series) with two
organizations of `--conversations` conversations each (the second one is there so that every
query must pick one organization's rows out of twice as many): per conversation,
`--turns` customer messages each with its webhook event, the agent's reply message, the reply
delivered to Kommo (`reply:<event>`) and its LLM call; one in ten conversations handed over;
a lead snapshot (pipeline and stage) for four leads in five; ten agents; started over the last
30 days, so about a quarter falls in the dashboard's 7 days. Rows are inserted in time
order, as the platform appends them. One webhook event in a hundred
failed. The job queue holds `--jobs` finished jobs of the last 48 hours, one in fifty failed.

`agent-platform api` then runs in its own process; a signed-in session (the login form, its
CSRF token and cookie) requests each page `--warmup` times, then `--requests` times one after
the other over one keep-alive connection. Timed: from sending the request to the last byte of
the page, on 127.0.0.1 — the server's time and a loopback round trip. p50/p95/p99 per page;
goal: p95 < 200 ms.

    .venv/bin/python bench/pages.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python bench/pages.py      # the embedded PostgreSQL (pgserver)
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from harness import (
    BenchError,
    bench_database,
    free_port,
    platform_cli,
    platform_env,
    stop_process,
    wait_for_quiet_machine,
    wait_until,
)
from results_file import REPO_ROOT, RESULTS_DIR, machine_details, write_results

GOAL_P95_MS = 200.0
PAGES = {"dashboard": "/app", "agents": "/app/agents"}
PASSWORD = secrets.token_urlsafe(24)  # the bench admin's, for this run only
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to create the run's database on; default: embedded pgserver",
    )
    parser.add_argument("--conversations", type=int, default=10_000, help="per organization")
    parser.add_argument("--turns", type=int, default=6, help="customer messages per conversation")
    parser.add_argument("--agents", type=int, default=10, help="per organization")
    parser.add_argument("--jobs", type=int, default=20_000, help="finished jobs in the queue")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per page")
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="seconds to wait for an idle machine"
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the data

# Each conversation starts at a random moment of the last 30 days; its turns are 2 minutes
# apart, the reply 20 s after the customer's message.
_CONVERSATIONS = """
INSERT INTO conversations (organization_id, connection_id, channel, agent_id, entity_type,
                           entity_id, status, last_message_at, handed_off_at, created_at)
SELECT :organization, :connection, 'kommo', :agent, 'leads', :first_lead + g, 'open',
       started + make_interval(mins => 2 * :turns),
       CASE WHEN g % 10 = 0 THEN started + interval '5 minutes' END,
       started
  FROM (SELECT g, now() - random() * interval '30 days' AS started
          FROM generate_series(1, :conversations) AS g) AS s
 ORDER BY started
"""
_TURNS = """
CREATE TEMP TABLE bench_turns ON COMMIT DROP AS
SELECT c.id AS conversation_id, c.entity_id, gen_random_uuid() AS event_id,
       c.created_at + make_interval(mins => 2 * k) AS at
  FROM conversations c, generate_series(0, :turns - 1) AS k
 WHERE c.organization_id = :organization
"""
_EVENTS = """
INSERT INTO inbox_events (id, organization_id, connection_id, source, dedupe_key, payload,
                          received_at, handled_at, status, created_at)
SELECT event_id, :organization, :connection, 'kommo', event_id::text, '{}'::jsonb,
       at, at + interval '20 seconds',
       CASE WHEN random() < 0.01 THEN 'failed' ELSE 'handled' END, at
  FROM bench_turns
 ORDER BY at
"""
_MESSAGES = """
INSERT INTO messages (organization_id, conversation_id, inbox_event_id, role, content, created_at)
SELECT :organization, conversation_id, event_id, 'user', 'How much is the sofa?', at AS at
  FROM bench_turns
UNION ALL
SELECT :organization, conversation_id, NULL, 'assistant', 'It costs 100 USD.',
       at + interval '20 seconds'
  FROM bench_turns
 ORDER BY at
"""
_DELIVERIES = """
INSERT INTO crm_deliveries (organization_id, connection_id, idempotency_key, kind, entity_type,
                            entity_id, payload, status, attempts, sent_at, created_at)
SELECT :organization, :connection, 'reply:' || event_id::text, 'note', 'leads', entity_id,
       '{}'::jsonb, 'sent', 1, at + interval '20 seconds', at
  FROM bench_turns
 ORDER BY at
"""
_LLM_CALLS = """
INSERT INTO llm_calls (organization_id, agent_id, conversation_id, model_requested, model_used,
                       status, tokens_in, tokens_out, cost_usd, cost_source, latency_ms,
                       created_at)
SELECT :organization, :agent, conversation_id, 'test/model', 'test/model', 'ok', 800, 60,
       0.0004, 'provider', 900, at + interval '19 seconds'
  FROM bench_turns
 ORDER BY at
"""
_SNAPSHOTS = """
INSERT INTO automation_lead_snapshots (organization_id, connection_id, lead_id, facts)
SELECT :organization, :connection, entity_id,
       jsonb_build_object('pipeline_id', 7000 + entity_id % 3, 'status_id', 142000 + entity_id % 9)
  FROM conversations
 WHERE organization_id = :organization AND entity_id % 5 <> 0
"""
# Finished jobs of the last 48 hours, with the events the dashboard's failure rate reads.
_JOBS = """
WITH jobs AS (
    INSERT INTO procrastinate_jobs (queue_name, task_name, args, status)
    SELECT :queue, 'agent.reply', '{}'::jsonb,
           (CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'succeeded' END)::procrastinate_job_status
      FROM generate_series(1, :jobs) AS g
    RETURNING id, status
)
INSERT INTO procrastinate_events (job_id, type, at)
SELECT id, status::text::procrastinate_job_event_type, now() - random() * interval '48 hours'
  FROM jobs
"""


async def seed(services: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Two organizations of `--conversations` each; the first one's login. Returns facts."""
    from sqlalchemy import text

    from agent_platform.agent.models import Agent
    from agent_platform.crm.models import CrmConnection
    from agent_platform.db.session import transaction
    from agent_platform.llm.models import LlmBudget
    from agent_platform.organization.models import Membership, Organization, Role, User
    from agent_platform.organization.passwords import hash_password

    email = f"bench-{secrets.token_hex(3)}@example.com"
    organizations = []
    for index in range(2):
        async with transaction(services.sessions) as session:
            organization = Organization(name=f"Bench {index}", slug=f"bench-{uuid.uuid4().hex[:8]}")
            session.add(organization)
            await session.flush()
            agents = [
                Agent(organization_id=organization.id, name=f"Agent {n}", model="test/model")
                for n in range(args.agents)
            ]
            session.add_all(agents)
            connection = CrmConnection(
                organization_id=organization.id,
                subdomain=f"bench{index}",
                base_url=f"https://bench{index}.kommo.com",
                webhook_token=secrets.token_hex(16),
            )
            session.add(connection)
            session.add(LlmBudget(organization_id=organization.id, monthly_limit_usd=100))
            if index == 0:
                user = User(email=email, name="Bench Admin", password_hash=hash_password(PASSWORD))
                session.add(user)
                await session.flush()
                session.add(
                    Membership(organization_id=organization.id, user_id=user.id, role=Role.ADMIN)
                )
            await session.flush()
            parameters = {
                "organization": organization.id,
                "connection": connection.id,
                "agent": agents[0].id,
                "conversations": args.conversations,
                "turns": args.turns,
                "first_lead": 1_000_000 * (index + 1),
            }
            for statement in (_CONVERSATIONS, _TURNS, _EVENTS, _MESSAGES, _DELIVERIES):
                await session.execute(text(statement), parameters)
            for statement in (_LLM_CALLS, _SNAPSHOTS):
                await session.execute(text(statement), parameters)
        organizations.append(organization.id)
    async with transaction(services.sessions) as session:
        await session.execute(
            text(_JOBS), {"queue": services.settings.job_queue_name, "jobs": args.jobs}
        )
    async with services.engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(text("VACUUM ANALYZE"))
        counts = {
            table: (await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()  # noqa: S608
            for table in (
                "conversations",
                "messages",
                "inbox_events",
                "crm_deliveries",
                "llm_calls",
                "automation_lead_snapshots",
                "agents",
                "procrastinate_jobs",
            )
        }
    return {"email": email, "organization_id": str(organizations[0]), "rows": counts}


async def fill(database_url: str, args: argparse.Namespace) -> dict[str, Any]:
    from alembic import command
    from pydantic import SecretStr

    from agent_platform.config import Settings
    from agent_platform.db.migrate import alembic_config
    from agent_platform.services import open_services

    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        encryption_key=SecretStr(secrets.token_urlsafe(40)),
        secret_key=SecretStr(secrets.token_urlsafe(40)),
    )
    async with open_services(settings, database_url) as services:
        started = time.perf_counter()
        facts = await seed(services, args)
    return facts | {"seed_seconds": round(time.perf_counter() - started, 1)}


# --------------------------------------------------------------------------- the measuring


@contextmanager
def api_process(database_url: str, data_dir: Path, timeout: float) -> Iterator[str]:
    """`agent-platform api` on a free port, on the run's database; its base URL."""
    port = free_port()
    env = platform_env(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        ENCRYPTION_KEY=secrets.token_urlsafe(40),
        SECRET_KEY=secrets.token_urlsafe(40),
        LOG_LEVEL="WARNING",
    )
    with (data_dir / "api.log").open("wb") as log:
        # cwd is the data directory so that no stray .env file changes the settings.
        process = subprocess.Popen(
            [str(platform_cli()), "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/api/health/live", timeout=2).status_code == 200,
            timeout,
            "agent-platform api",
            process,
        )
        yield url
    finally:
        stop_process(process, "agent-platform api", timeout=20)


def signed_in_client(url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    found = CSRF_FIELD.search(client.get("/login").text)
    if found is None:
        raise BenchError("the login page has no CSRF field")
    answer = client.post(
        "/login", data={"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
    )
    if answer.status_code != 303:
        raise BenchError(f"signing in failed: {answer.status_code} {answer.text[:200]}")
    return client


def distribution(timings_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(timings_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "requests": len(ordered),
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "max_ms": round(ordered[-1], 2),
    }


def measure_page(client: httpx.Client, path: str, args: argparse.Namespace) -> dict[str, Any]:
    first = client.get(path)
    if first.status_code == 404:
        return {"measured": False, "reason": f"GET {path} answered 404: the page does not exist"}
    if first.status_code != 200:
        raise BenchError(f"GET {path} answered {first.status_code}: {first.text[:300]}")
    for _ in range(args.warmup):
        client.get(path)
    timings = []
    for _ in range(args.requests):
        started = time.perf_counter()
        answer = client.get(path)
        timings.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise BenchError(f"GET {path} answered {answer.status_code} while timed")
    figures = distribution(timings)
    return (
        {"measured": True, "page_bytes": len(first.content)}
        | figures
        | {"goal_p95_met": figures["p95_ms"] < GOAL_P95_MS}
    )


def dashboard_shows(client: httpx.Client) -> dict[str, str]:
    """A few of the dashboard's figures, to see it read the seeded rows."""
    page = client.get(PAGES["dashboard"]).text
    shown = {}
    for test_id in ("conversations-7-days", "replies-7-days", "first-response", "llm-spent"):
        found = re.search(rf'data-testid="{test_id}"[^>]*>([^<]*)<', page)
        shown[test_id] = found.group(1).strip() if found else "(missing)"
    return shown


def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    seeded = asyncio.run(fill(database_url, args))
    print(f"seeded in {seeded['seed_seconds']} s: {seeded['rows']}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="ap-bench-pages-"))
    with (
        api_process(database_url, data_dir, args.startup_timeout) as url,
        closing(signed_in_client(url, seeded["email"])) as client,
    ):
        pages = {name: measure_page(client, path, args) for name, path in PAGES.items()}
        shows = dashboard_shows(client)
    return {"seeded": seeded, "pages": pages, "dashboard_shows": shows}


def summary_line(name: str, entry: dict[str, Any]) -> str:
    if not entry["measured"]:
        return f"{name}: not measured ({entry['reason']})"
    met = "met" if entry["goal_p95_met"] else "NOT met"
    return (
        f"{name} ({PAGES[name]}): p50 {entry['p50_ms']} ms, p95 {entry['p95_ms']} ms, "
        f"p99 {entry['p99_ms']} ms over {entry['requests']} requests; goal p95 < "
        f"{GOAL_P95_MS:g} ms {met}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    started_at = datetime.now(UTC)
    machine = machine_details()  # before the run: the commit measured, not a later one
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    try:
        with bench_database(args.database_url, "ap_bench_pages") as (database_url, server):
            results = run(args, database_url)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    for name, entry in results["pages"].items():
        print(summary_line(name, entry))
    results |= {
        "benchmark": "pages",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "parameters": {**vars(args), "results_dir": str(args.results_dir)},
        "database_server": server,
        "goal": f"server time p95 < {GOAL_P95_MS:g} ms for each page",
        "timed": "GET over loopback HTTP, one request at a time, signed in (docstring)",
        "machine": machine | {"before_start": quiet},
    }
    path = write_results("pages", results, args.results_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
