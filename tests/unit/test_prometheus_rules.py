"""The alerting files of deploy/: promtool's and amtool's own checks, promtool's unit tests of
every alert, and what every alert must carry for the person it wakes up."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULE_FILES = [PROMETHEUS / "alerts.yml", PROMETHEUS / "recording.yml"]
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))
ALERTMANAGER_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/gpt-agent-platform/gpt-agent-platform/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning"}
# The alerts the runbook and the operators know by name (docs/runbook.md names them).
ALERTS = {
    "WorkerDown", "QueueStalled", "JobFailureRateHigh", "QueueBacklogWarning",
    "QueueBacklogCritical", "ApiDown", "HealthCheckFailing", "DatabaseConnectionsHigh",
    "DatabaseSlow", "HighErrorRate", "AvailabilityBudgetBurnFast", "AvailabilityBudgetBurnSlow",
    "HighLatencyP95", "LatencyBudgetBurnFast", "LatencyBudgetBurnSlow", "RedisMemoryHigh",
    "LlmErrorRateHigh", "KommoConnectionNeedsReauth", "KommoRateLimited", "KommoBlocked",
    "WebhooksFailing",
}  # fmt: skip
PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(
            f"{name} is not installed (Debian package {PACKAGES[name]}; "
            ".ci/install-prometheus installs it)"
        )
    return path


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in args], capture_output=True, text=True, timeout=120, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for group in load(PROMETHEUS / "alerts.yml")["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces
    become hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_promtool_accepts_the_rules_and_the_prometheus_configuration() -> None:
    promtool = tool("promtool")
    rules = run(promtool, "check", "rules", *RULE_FILES)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run(promtool, "check", "config", PROMETHEUS / "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    promtool = tool("promtool")
    assert RULE_TESTS, "no promtool tests in deploy/prometheus/tests"
    result = run(promtool, "test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_configuration() -> None:
    amtool = tool("amtool")
    result = run(amtool, "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_link() -> None:
    found = alerts()
    assert {alert["alert"] for alert in found} == ALERTS
    for alert in found:
        name, annotations = alert["alert"], alert.get("annotations", {})
        assert alert.get("labels", {}).get("severity") in SEVERITIES, name
        assert annotations.get("summary"), f"{name} has no summary"
        assert annotations.get("description"), f"{name} has no description"
        assert str(annotations.get("runbook_url", "")).startswith(RUNBOOK_URL), name


def test_every_runbook_link_leads_to_a_section_of_the_runbook() -> None:
    assert RUNBOOK.exists(), f"{RUNBOOK.relative_to(ROOT)} is missing"
    headings = re.findall(r"^## (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    anchors = {github_anchor(heading) for heading in headings}
    broken = {
        alert["alert"]: anchor
        for alert in alerts()
        if (anchor := alert["annotations"]["runbook_url"].removeprefix(RUNBOOK_URL)) not in anchors
    }
    assert not broken, f"alerts whose runbook section does not exist: {broken}"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    cases: dict[str, set[str]] = {}
    for path in RULE_TESTS:
        for test in load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                outcome = "firing" if case.get("exp_alerts") else "quiet"
                cases.setdefault(case["alertname"], set()).add(outcome)
    names = {alert["alert"] for alert in alerts()}
    missing = {
        name: sorted({"firing", "quiet"} - cases.get(name, set()))
        for name in names
        if cases.get(name) != {"firing", "quiet"}
    }
    assert not missing, f"alerts without these promtool cases: {missing}"
    assert set(cases) <= names, f"promtool tests of no alert: {set(cases) - names}"


def test_alertmanager_pages_for_critical_alerts_and_knows_the_alerts_it_inhibits() -> None:
    config = load(ALERTMANAGER_CONFIG)
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = config["route"].get("routes", [])
    assert config["route"]["receiver"] in receivers
    assert all(route["receiver"] in receivers for route in routes)
    assert any('severity="critical"' in route.get("matchers", []) for route in routes)
    names = {alert["alert"] for alert in alerts()}
    for rule in config.get("inhibit_rules", []):
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            assert re.fullmatch(r'alertname="(\w+)"', matcher), matcher
            assert matcher.split('"')[1] in names, matcher
