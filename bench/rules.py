"""Automation rules: how many events per second the engine evaluates against 1,000 active rules,
and how long an event takes from Kommo's webhook to the first action, through the queue.

Evaluation (in this process, pure engine): `--rules` condition trees of the shapes admins
build (groups of 2–6 conditions over the lead, the message, time and custom fields; one in ten
with a regular expression) are parsed once, as the platform does when they are saved; then
`--events` events' facts are evaluated against every one of them, traces included. Reported:
events per second (each event against all the rules) and rule evaluations per second.

Latency (the real path): `agent-platform up --demo` (webhook_to_reply's start_target) with
private addresses allowed for webhook actions; a trigger on `lead_status_changed` whose first
action is a webhook to a receiver in this process. Each status-change webhook is POSTed to the
platform one at a time, and its latency is the time from sending it to the receiver getting
the action's call: the webhook taken in, the dispatch job, the trigger evaluated and its run
recorded, the actions job, the signed HTTP call.

    .venv/bin/python bench/rules.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from harness import BenchError, free_port, wait_for_quiet_machine
from results_file import REPO_ROOT, machine_details, write_results

sys.path.insert(0, str(REPO_ROOT))

from agent_platform.automation.engine import Condition, evaluate, parse_condition
from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.facts import facts_for
from agent_platform.crm.sandbox.webhook_payloads import bracket_pairs

GOAL_EVENTS_PER_SECOND = 100.0  # against 1,000 rules: a busy team's webhooks with room to spare
GOAL_FIRST_ACTION_P95_MS = 1000.0
ZONE = ZoneInfo("Europe/Moscow")
WORDS = ("price", "delivery", "sofa", "discount", "order", "hello", "invoice", "warranty")
STAGES = (142, 143, 1001, 1002, 1003, 1004)
TAGS = ("vip", "hot", "cold", "repeat", "wholesale", "b2b")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--latency-events", type=int, default=50)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--database-url", help="a PostgreSQL server URL; default: embedded")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    parser.add_argument(
        "--quiet-wait", type=float, default=120.0, help="seconds to wait for an idle machine"
    )
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- evaluation


def random_condition(rng: random.Random) -> dict[str, Any]:
    kind = rng.randrange(8)
    if kind == 0:
        return {"field": "lead.price", "operator": "gte", "value": rng.randrange(0, 100_000)}
    if kind == 1:
        return {"field": "lead.status_id", "operator": "in", "value": rng.sample(STAGES, 3)}
    if kind == 2:
        return {"field": "lead.tags", "operator": "contains", "value": rng.choice(TAGS)}
    if kind == 3:
        return {"field": "message.text", "operator": "contains", "value": rng.choice(WORDS)}
    if kind == 4:
        return {"field": "time.hour", "operator": "between", "value": [9, rng.randrange(10, 23)]}
    if kind == 5:
        return {"field": "lead.custom_fields.budget", "operator": "gt", "value": 500}
    if kind == 6:
        return {"field": "lead.name", "operator": "starts_with", "value": "Lead"}
    return {"field": "lead.status_id", "operator": "changed_to", "value": rng.choice(STAGES)}


def random_tree(rng: random.Random) -> dict[str, Any]:
    conditions: list[dict[str, Any]] = [random_condition(rng) for _ in range(rng.randrange(2, 7))]
    if rng.random() < 0.1:
        words = "|".join(rng.sample(WORDS, 3))
        conditions.append({"field": "message.text", "operator": "matches", "value": f"({words})"})
    if rng.random() < 0.3:
        half = len(conditions) // 2
        return {"all": [*conditions[:half], {"any": conditions[half:]}]}
    if rng.random() < 0.2:
        return {"all": [conditions[0], {"not": {"any": conditions[1:]}}]}
    return {"all": conditions}


def random_event(rng: random.Random, index: int) -> AutomationEvent:
    text = " ".join(rng.choices(WORDS, k=rng.randrange(3, 30)))
    return AutomationEvent(
        type=EventType.MESSAGE_INCOMING,
        occurred_at=datetime.now(UTC),
        lead_id=index,
        data={"text": text, "channel": "telegram"},
        lead={
            "id": index,
            "name": f"Lead {index}",
            "price": rng.randrange(0, 200_000),
            "status_id": rng.choice(STAGES),
            "pipeline_id": 1,
            "tags": rng.sample(TAGS, rng.randrange(0, 3)),
            "custom_fields": {"budget": rng.randrange(0, 2000)},
        },
        previous={"status_id": rng.choice(STAGES)},
    )


def measure_evaluation(rule_count: int, event_count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    trees = [random_tree(rng) for _ in range(rule_count)]
    started = time.perf_counter()
    rules: list[Condition] = [parse_condition(tree) for tree in trees]
    parse_seconds = time.perf_counter() - started
    events = [random_event(rng, index) for index in range(event_count)]
    now = datetime.now(UTC)
    matched = 0
    per_event: list[float] = []
    started = time.perf_counter()
    for event in events:
        event_started = time.perf_counter()
        facts = facts_for(event, zone=ZONE, now=now)
        matched += sum(evaluate(rule, facts).matched for rule in rules)
        per_event.append(time.perf_counter() - event_started)
    seconds = time.perf_counter() - started
    per_event.sort()
    return {
        "rules": rule_count,
        "events": event_count,
        "parse_ms_per_rule": round(parse_seconds / rule_count * 1000, 4),
        "events_per_second": round(event_count / seconds, 1),
        "rule_evaluations_per_second": round(event_count * rule_count / seconds),
        "ms_per_event_against_all_rules": {
            "p50": round(per_event[len(per_event) // 2] * 1000, 2),
            "p95": round(per_event[int(len(per_event) * 0.95) - 1] * 1000, 2),
            "max": round(per_event[-1] * 1000, 2),
        },
        "matches": matched,
        "match_rate": round(matched / (event_count * rule_count), 4),
    }


# --------------------------------------------------------------------------- latency


class Receiver:
    """An HTTP endpoint in this process that notes when each webhook action's call arrives."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                arrived = time.perf_counter()
                self.send_response(200)
                self.end_headers()
                lead_id = int(_lead_of(body))
                with receiver.arrived:
                    receiver.arrivals.setdefault(lead_id, arrived)
                    receiver.arrived.notify_all()

            def log_message(self, *args: object) -> None:
                return

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, lead_id: int, timeout: float) -> float | None:
        with self.arrived:
            self.arrived.wait_for(lambda: lead_id in self.arrivals, timeout=timeout)
            return self.arrivals.get(lead_id)


def _lead_of(body: bytes) -> str:
    return str(json.loads(body)["lead_id"])


def status_webhook(lead_id: int, status_id: int, old_status_id: int, stamp: int) -> bytes:
    """Kommo's `leads[status]` webhook, as the sandbox form-encodes it."""
    item = {
        "id": lead_id,
        "name": f"Bench lead {lead_id}",
        "status_id": status_id,
        "old_status_id": old_status_id,
        "pipeline_id": 1,
        "old_pipeline_id": 1,
        "price": 1000,
        "last_modified": stamp,
    }
    tree = {"leads": {"status": [item]}, "account": {"id": 30000001, "subdomain": "sandbox"}}
    return urllib.parse.urlencode(bracket_pairs(tree)).encode()


async def measure_latency(args: argparse.Namespace) -> dict[str, Any]:
    from webhook_to_reply import Cleanup, start_target

    receiver = Receiver()
    os.environ["AUTOMATION_WEBHOOK_ALLOW_PRIVATE_NETWORKS"] = "true"
    cleanup = Cleanup()
    options = argparse.Namespace(
        keep_data_dir=False,
        kommo_limit="lift",
        database_url=args.database_url,
        private_database=bool(args.database_url),
        startup_timeout=args.startup_timeout,
    )
    try:
        target = start_target(options, cleanup)
        return await _time_first_actions(args, target, receiver)
    finally:
        cleanup.stop_processes()
        cleanup.drop_private_database()
        cleanup.remove_files()
        receiver.server.shutdown()


async def _time_first_actions(
    args: argparse.Namespace, target: Any, receiver: Receiver
) -> dict[str, Any]:
    demo = json.loads((target.data_dir / "demo.json").read_text())
    headers = {"Authorization": f"Bearer {demo['api_key']}"}
    trigger = {
        "name": "Bench: tell the receiver about stage changes",
        "event": {"type": "lead_status_changed"},
        "conditions": {"field": "lead.price", "operator": "gte", "value": 1},
        "actions": [
            {
                "type": "webhook",
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "payload": {"lead_id": "{{ lead.id }}"},
            }
        ],
    }
    latencies: list[float] = []
    missing = 0
    async with httpx.AsyncClient(timeout=30.0) as client:
        created = await client.post(
            f"{target.api_url}/api/v1/triggers", json=trigger, headers=headers
        )
        if created.status_code != 201:
            raise BenchError(f"creating the trigger: {created.status_code} {created.text[:300]}")
        for index in range(args.latency_events):
            lead_id = 500_000 + index
            body = status_webhook(lead_id, 1002, 1001, int(time.time() * 1000) + index)
            sent = time.perf_counter()
            response = await client.post(
                target.webhook_url,
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            if response.status_code != 200:
                raise BenchError(f"webhook: {response.status_code} {response.text[:300]}")
            arrived = await asyncio.to_thread(receiver.wait_for, lead_id, 30.0)
            if arrived is None:
                missing += 1
            else:
                latencies.append(arrived - sent)
    latencies.sort()
    figures: dict[str, Any] = {"events": args.latency_events, "missing": missing}
    if latencies:
        figures.update(
            {
                "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
                "p95_ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)] * 1000, 1),
                "max_ms": round(latencies[-1] * 1000, 1),
            }
        )
    figures["database"] = "external (private database)" if args.database_url else "embedded"
    return figures


# --------------------------------------------------------------------------- main


def goals(evaluation: dict[str, Any], latency: dict[str, Any] | None) -> list[dict[str, Any]]:
    stated = [
        {
            "goal": f"≥ {GOAL_EVENTS_PER_SECOND:g} events/s against {evaluation['rules']} rules",
            "value": evaluation["events_per_second"],
            "met": evaluation["events_per_second"] >= GOAL_EVENTS_PER_SECOND,
        }
    ]
    if latency is not None:
        p95 = latency.get("p95_ms")
        stated.append(
            {
                "goal": f"event to first action p95 < {GOAL_FIRST_ACTION_P95_MS:g} ms",
                "value_ms": p95,
                "met": p95 is not None
                and p95 < GOAL_FIRST_ACTION_P95_MS
                and not latency["missing"],
            }
        )
    return stated


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_details()
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    evaluation = measure_evaluation(args.rules, args.events, args.seed)
    print(
        f"evaluation: {evaluation['events_per_second']} events/s against {args.rules} rules "
        f"({evaluation['rule_evaluations_per_second']} rule evaluations/s)"
    )
    latency = None if args.skip_latency else asyncio.run(measure_latency(args))
    if latency is not None:
        print(
            f"event → first action: p50 {latency.get('p50_ms')} ms, p95 {latency.get('p95_ms')} ms"
        )
    results = {
        "benchmark": "rules",
        "machine": machine,
        "machine_load_before": quiet,
        "evaluation": evaluation,
        "event_to_first_action": latency or "not measured (--skip-latency)",
        "goals": goals(evaluation, latency),
    }
    path = write_results("rules", results)
    print(f"results: {path.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
