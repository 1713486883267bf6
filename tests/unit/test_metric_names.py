"""Every metric a Grafana dashboard or a Prometheus rule reads is one the platform exports: a
renamed metric must not leave a panel empty or an alert that can never fire. The exported
names come from real scrapes of a running api and worker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.services import open_services
from tests.support.processes import eventually_async
from tests.support.servers import serve_app
from tests.support.worker import running_worker

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = [PROMETHEUS / "alerts.yml", PROMETHEUS / "recording.yml"]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
# Series Prometheus makes itself: per target, and the alerts' own state.
PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS"}
# The sample names each metric type exposes, from its family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
# A whole identifier that is not a function call, nor part of a number (1e9) or a variable.
_IDENTIFIER = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label values, label names in grouping
    clauses, ranges and function names left out)."""
    for pattern in (_STRINGS, _MATCHERS, _RANGES, _GROUPING):
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENTIFIER.findall(expr) if name.lower() not in _KEYWORDS}


def test_metric_names_reads_the_metrics_of_an_expression() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, route) (rate(http_request_duration_seconds_bucket{"
        'route!~"/metrics|x{2}"}[$__rate_interval]))) > 1e3 and on() up offset 5m'
        " or slo:sli_error:ratio_rate5m / 0.001"
    )
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "up",
        "slo:sli_error:ratio_rate5m",
    }


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def dashboard_expressions() -> dict[str, str]:
    """expression -> where it is (dashboard file and panel title)."""
    found = {}
    for path in DASHBOARDS:
        for panel in panels(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                found[target["expr"]] = f"{path.name}: {panel['title']}"
    return found


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def exported_names(exposition: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(exposition):
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


async def scrape_api_and_worker(settings: Settings) -> tuple[str, str]:
    """The /metrics of a running api, then of a running worker (both served over HTTP)."""
    assert settings.database_url
    with serve_app(create_app(settings, settings.database_url)) as api_url:
        async with httpx.AsyncClient(timeout=10.0) as client:
            api = (await client.get(f"{api_url}/metrics")).raise_for_status().text
    worker_url = f"http://127.0.0.1:{settings.worker_health_port}/metrics"

    def worker_metrics() -> str | None:
        try:
            response = httpx.get(worker_url, timeout=10.0)
        except httpx.TransportError:
            return None
        return response.text if response.status_code == 200 else None

    async with (
        open_services(settings, settings.database_url) as services,
        running_worker(services),
    ):
        worker = await eventually_async(
            worker_metrics, within=30.0, message="the worker never served /metrics"
        )
    return api, worker


async def test_dashboards_and_rules_read_only_metrics_the_platform_exports(
    settings: Settings, redis_url: str
) -> None:
    # With Redis configured, as in the compose stack: its memory figures are exported then.
    api, worker = await scrape_api_and_worker(settings.model_copy(update={"redis_url": redis_url}))
    exported = exported_names(api) | exported_names(worker)
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    known = exported | recorded | PROMETHEUS_BUILTINS

    expressions = dashboard_expressions()
    expressions |= {rule["expr"]: rule.get("alert") or rule["record"] for rule in rules()}
    unknown = {
        name: where for expr, where in expressions.items() for name in metric_names(expr) - known
    }
    assert not unknown, f"metrics read but not exported (name: where): {unknown}"
    # The dashboards show what the issue asks for: each of these is read somewhere.
    read = set().union(*(metric_names(expr) for expr in expressions))
    assert {
        "http_requests_total",
        "web_active_users",
        "queue_jobs",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "llm_cost_usd_total",
        "kommo_responses_429_total",
        "webhooks_received_total",
        "slo:error_budget_remaining:ratio",
    } <= read


def test_dashboards_are_provisionable_grafana_json() -> None:
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids, f"{path.name}: uid used twice"
        uids.add(board["uid"])
        assert board["title"], path.name
        assert 36 <= board["schemaVersion"] <= 41, path.name
        variables = {variable["name"] for variable in board["templating"]["list"]}
        assert "DS_PROMETHEUS" in variables, path.name
        for panel in panels(board["panels"]):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", (path.name, panel["title"])
            assert panel["targets"], (path.name, panel["title"])
            assert all(target["expr"] for target in panel["targets"]), (path.name, panel["title"])
    assert {path.stem for path in DASHBOARDS} == {
        "overview",
        "worker-queue",
        "llm-cost",
        "kommo",
        "slo",
    }
