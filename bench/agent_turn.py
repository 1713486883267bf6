"""Agent turn: the platform's own time per customer message, the LLM's time left out, and
knowledge-base search latency at 10k and 100k chunks.

Turns: `agent-platform up --demo` is started on a database of the run's own with a fake
OpenAI server that answers at once (the one webhook_to_reply.py starts). Every message goes
to a lead of its own, so that no debounce, daily cap or conversation history joins two
messages, and takes the real path: the webhook over HTTP, the inbox, the job, the reply gate,
the turn (context, knowledge, the LLM call) and the reply note delivered to the Kommo sandbox.
Per message, read from the platform's own records:

    overhead = delivery sent_at - inbox received_at - the LLM calls' latency_ms of its lead

`received_at` is stamped when the webhook is taken in and `sent_at` right after the sandbox
answered the note, so the figure holds queueing, the job, the database, the gate, the turn and
the Kommo call; the LLM calls' latency (the gateway's own measure, whole milliseconds) is what
is subtracted. Two phases: `--messages` sent one at a time, each answered before the next (the
overhead of a turn with nothing queued), then `--burst` sent at once (the job count and
throughput with the queue full; their overhead includes the time spent waiting in the queue).

Search: knowledge_search.py's run, on a database of its own, after the platform has stopped.

Results go to bench/results/agent_turn-<UTC timestamp>.json with the machine's details and the
goals (overhead p95 < 50 ms; search p95 < 50 ms at 100k chunks), met or not.

    .venv/bin/python bench/agent_turn.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import knowledge_search
from harness import BenchError, create_database, drop_database, wait_for_quiet_machine
from results_file import REPO_ROOT, RESULTS_DIR, machine_details, write_results
from webhook_to_reply import (
    Cleanup,
    Message,
    Target,
    connect,
    create_leads,
    database_facts,
    distribution_ms,
    fetch_timeline,
    prewarm,
    send_webhook,
    set_sandbox_rate_limit,
    start_target,
    wait_for_drain,
    webhook_body,
)

GOAL_OVERHEAD_P95_MS = 50.0
GOAL_SEARCH_SIZE = 100_000
MEASURED = (
    "overhead = crm_deliveries.sent_at (right after the Kommo sandbox answered the reply note) "
    "- inbox_events.received_at (the webhook taken in) - the sum of llm_calls.latency_ms of "
    "the message's lead (its only turn), per message; end_to_end is the same without the "
    "subtraction. one_at_a_time: each message answered before the next is sent, so nothing "
    "waits in the queue. burst: all sent at once; its overhead includes the queue wait, and "
    "turns_per_second is its throughput from the first webhook taken in to the last note sent."
)
MESSAGE_TEXT = "Hi! How much is the corner sofa, and how fast is delivery?"

LLM_LATENCY_BY_LEAD_SQL = """
SELECT c.entity_id AS lead_id, sum(l.latency_ms)::float8 / 1000 AS llm_seconds,
       count(*) AS llm_calls
  FROM llm_calls l
  JOIN conversations c ON c.id = l.conversation_id
 WHERE c.entity_type = 'leads' AND c.entity_id = ANY(%s)
 GROUP BY c.entity_id
"""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="Goals: overhead p95 < 50 ms; search p95 < 50 ms at 100k chunks.",
    )
    parser.add_argument(
        "--database-url",
        required=True,
        help="a PostgreSQL server: the run creates its databases on it and drops them after",
    )
    parser.add_argument(
        "--messages", type=int, default=200, help="messages sent one at a time (200)"
    )
    parser.add_argument("--burst", type=int, default=200, help="messages sent at once (200)")
    parser.add_argument(
        "--burst-concurrency", type=int, default=20, help="burst requests in flight (20)"
    )
    parser.add_argument("--prewarm", type=int, default=5, help="untimed messages first (5)")
    parser.add_argument(
        "--search-sizes",
        type=int,
        nargs="*",
        default=[10_000, GOAL_SEARCH_SIZE],
        help="knowledge-base sizes in chunks; none skips the search part (10000 100000)",
    )
    parser.add_argument(
        "--search-queries", type=int, default=400, help="timed searches per mode (400)"
    )
    parser.add_argument("--startup-timeout", type=float, default=180.0)
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="0: do not wait (60)")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    if args.messages < 1 or args.burst < 0 or args.burst_concurrency < 1 or args.prewarm < 0:
        parser.error("--messages and --burst-concurrency must be positive, the others >= 0")
    return args


# --------------------------------------------------------------------------- turns


def target_options(args: argparse.Namespace) -> argparse.Namespace:
    """What webhook_to_reply's start_target reads: a private database, Kommo's limit lifted
    (one account's 7 requests/s would otherwise set the burst's pace, not the platform)."""
    return argparse.Namespace(
        database_url=args.database_url,
        private_database=True,
        keep_data_dir=False,
        kommo_limit="lift",
        startup_timeout=args.startup_timeout,
    )


async def send_accepted(client: httpx.AsyncClient, target: Target, message: Message) -> None:
    body = webhook_body(message.message_id, message.lead_id, MESSAGE_TEXT)
    await send_webhook(client, target.webhook_url, message, body)
    if message.outcome != "200" or not message.accepted:
        raise BenchError(f"webhook {message.message_id}: {message.outcome} {message.detail}")


async def one_at_a_time(
    client: httpx.AsyncClient, target: Target, db: Any, messages: list[Message]
) -> None:
    for message in messages:
        await send_accepted(client, target, message)
        answered, inbox = await wait_for_drain(
            client, target, db, f"message:{message.message_id}", 1, 0, 60.0
        )
        if answered is None or inbox.get("handled") != 1:
            raise BenchError(f"{message.message_id} was not answered: {inbox}")


async def all_at_once(
    client: httpx.AsyncClient,
    target: Target,
    db: Any,
    messages: list[Message],
    pattern: str,
    concurrency: int,
) -> dict[str, int]:
    slots = asyncio.Semaphore(concurrency)

    async def send(message: Message) -> None:
        async with slots:
            await send_accepted(client, target, message)

    await asyncio.gather(*(send(message) for message in messages))
    answered, inbox = await wait_for_drain(client, target, db, pattern, len(messages), 0, 600.0)
    if answered is None:
        raise BenchError(f"the burst was not answered within 600 s: {inbox}")
    return inbox


async def llm_seconds_by_lead(db: Any, leads: list[int]) -> dict[int, tuple[float, int]]:
    cursor = await db.execute(LLM_LATENCY_BY_LEAD_SQL, (leads,))
    return {
        row["lead_id"]: (row["llm_seconds"] or 0.0, row["llm_calls"])
        for row in await cursor.fetchall()
    }


def phase_figures(
    messages: list[Message],
    timeline: dict[str, dict[str, Any]],
    llm: dict[int, tuple[float, int]],
) -> dict[str, Any]:
    """Overhead, end to end and LLM time per message; jobs and throughput of the phase."""
    end_to_end, llm_time, overhead = [], [], []
    missing = 0
    for message in messages:
        row = timeline.get(message.message_id)
        # No note, or no LLM call to subtract (a turn that never reached the model): such a
        # message is not a measured turn, so it counts as never answered.
        if row is None or row["note_at"] is None or message.lead_id not in llm:
            missing += 1
            continue
        seconds = row["note_at"] - row["received_at"]
        end_to_end.append(seconds)
        llm_time.append(llm[message.lead_id][0])
        overhead.append(seconds - llm[message.lead_id][0])
    rows = [timeline[m.message_id] for m in messages if m.message_id in timeline]
    first_in = min(row["received_at"] for row in rows)
    last_out = max((row["note_at"] for row in rows if row["note_at"]), default=first_in)
    return {
        "overhead_ms": distribution_ms(overhead, missing),
        "end_to_end_ms": distribution_ms(end_to_end, missing),
        "llm_ms": distribution_ms(llm_time, missing),
        "llm_calls": sum(llm[m.lead_id][1] for m in messages if m.lead_id in llm),
        "jobs": {
            "count": len(rows),
            "status_counts": dict(Counter(str(row["job_status"]) for row in rows)),
            "retries": sum(row["retries"] or 0 for row in rows),
        },
        "seconds_first_received_to_last_sent": round(last_out - first_in, 3),
        "turns_per_second": round(len(end_to_end) / (last_out - first_in), 1)
        if last_out > first_in
        else None,
    }


async def measure_turns(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    db = await connect(str(target.database_url))
    facts = await database_facts(db)
    offset = facts["clock_offset_ms"] / 1000 if facts["clock_offset_applied"] else 0.0
    run_id = secrets.token_hex(4)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(60.0), limits=httpx.Limits(max_connections=args.burst_concurrency)
    ) as client:
        target.settings["sandbox_rate_limit"] = await set_sandbox_rate_limit(
            client, target, enforce=False
        )
        leads = await create_leads(client, target, args.prewarm + args.messages + args.burst)
        await prewarm(client, target, db, leads[: args.prewarm], run_id, args.prewarm)
        own_leads = iter(leads[args.prewarm :])
        phases = {
            name: [Message(i, f"bench-{run_id}-{name}-{i}", next(own_leads)) for i in range(count)]
            for name, count in (("one_at_a_time", args.messages), ("burst", args.burst))
        }
        await one_at_a_time(client, target, db, phases["one_at_a_time"])
        inbox = {}
        if phases["burst"]:
            inbox = await all_at_once(
                client,
                target,
                db,
                phases["burst"],
                f"message:bench-{run_id}-burst-%",
                args.burst_concurrency,
            )
    timeline = await fetch_timeline(db, f"message:bench-{run_id}-%", offset)
    llm = await llm_seconds_by_lead(db, leads[args.prewarm :])
    await db.close()
    results = {
        name: phase_figures(messages, timeline, llm)
        for name, messages in phases.items()
        if messages
    }
    if inbox:
        results["burst"]["inbox_status_counts"] = inbox
    results["database"] = {k: v for k, v in facts.items() if k != "backend_pid"}
    return results


def run_turns(args: argparse.Namespace) -> dict[str, Any]:
    cleanup = Cleanup()
    try:
        target = start_target(target_options(args), cleanup)
        results = asyncio.run(measure_turns(args, target))
        results["platform"] = target.settings
        return results
    finally:
        cleanup.stop_processes()
        cleanup.drop_private_database()
        cleanup.remove_files()


# --------------------------------------------------------------------------- search


def run_search(args: argparse.Namespace) -> dict[str, Any]:
    options = knowledge_search.parse_args(
        ["--sizes", *map(str, args.search_sizes), "--queries", str(args.search_queries)]
    )
    database_url, name = create_database(args.database_url, "ap_bench_turn_knowledge")
    try:
        return asyncio.run(knowledge_search.run(options, database_url))
    finally:
        drop_database(args.database_url, name)


# --------------------------------------------------------------------------- goals, output


def goals(turns: dict[str, Any], search: dict[str, Any] | None) -> list[dict[str, Any]]:
    overhead_p95 = turns["one_at_a_time"]["overhead_ms"].get("p95")
    stated = [
        {
            "goal": f"platform overhead per turn p95 < {GOAL_OVERHEAD_P95_MS:g} ms",
            "value_ms": overhead_p95,
            "met": overhead_p95 is not None and overhead_p95 < GOAL_OVERHEAD_P95_MS,
            "basis": "messages one at a time; a message never answered counts as never",
        }
    ]
    at_goal_size = (search or {}).get("sizes", {}).get(str(GOAL_SEARCH_SIZE))
    for mode in ("full_text", "hybrid"):
        figures = (at_goal_size or {}).get(mode, {})
        stated.append(
            {
                "goal": f"{mode} search p95 < {knowledge_search.GOAL_P95_MS:g} ms at 100k chunks",
                "value_ms": figures.get("p95_ms"),
                # None when the search part was not run: neither met nor missed.
                "met": bool(figures.get("goal_p95_met")) if figures.get("p95_ms") else None,
                "basis": figures.get("skipped") or "not measured"
                if not figures.get("p95_ms")
                else f"{at_goal_size['chunks']} chunks",
            }
        )
    return stated


def print_summary(results: dict[str, Any], path: Path) -> None:
    lines = ["", "Agent turn benchmark"]
    for phase in ("one_at_a_time", "burst"):
        figures = results["turns"].get(phase)
        if figures is None:
            continue
        lines.append(f"  {phase}: jobs {figures['jobs']}, {figures['turns_per_second']} turns/s")
        for name in ("overhead_ms", "end_to_end_ms", "llm_ms"):
            dist = figures[name]
            shown = ", ".join(f"{key} {dist.get(key)}" for key in ("p50", "p95", "p99", "mean"))
            lines.append(f"    {name:<14} {shown}")
    lines.append("  goals")
    for goal in results["goals"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[goal["met"]]
        lines.append(f"    [{verdict}] {goal['goal']}: {goal['value_ms']}")
    lines.append(f"  results  {path}")
    print("\n".join(lines))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # tests.support and tests.fakes, as the tests use them
    started_at = datetime.now(UTC)
    machine = machine_details()  # before the run: the commit measured, not a later one
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    try:
        turns = run_turns(args)
        search = run_search(args) if args.search_sizes else None
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    results = {
        "benchmark": "agent_turn",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        # The server's URL may hold a password; the databases were the run's own anyway.
        "parameters": vars(args) | {"database_url": "given", "results_dir": str(args.results_dir)},
        "measured": MEASURED,
        "turns": turns,
        "knowledge_search": search,
        "goals": goals(turns, search),
        "machine": machine | {"before_start": quiet},
    }
    path = write_results("agent_turn", results, args.results_dir)
    print_summary(results, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
