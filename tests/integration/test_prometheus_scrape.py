"""A real Prometheus (Debian's `prometheus` package) scrapes a running api and worker under the
compose stack's job names, with the platform's rules loaded, and records an SLI from what it
scraped: the metric names, label values (le="0.5") and rules fit the real exposition."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_platform.config import Settings
from agent_platform.services import Services
from tests.conftest import free_port
from tests.support.processes import eventually_async
from tests.support.worker import running_worker

PROMETHEUS_RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
JOBS = {"agent-platform-api", "agent-platform-worker"}
WITHIN = 60.0


def prometheus_config(api: str, worker: str) -> dict[str, Any]:
    """Like deploy/prometheus/prometheus.yml, at test speed and on this machine's ports."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [
            str(PROMETHEUS_RULES / "recording.yml"),
            str(PROMETHEUS_RULES / "alerts.yml"),
        ],
        "scrape_configs": [
            {"job_name": "agent-platform-api", "static_configs": [{"targets": [api]}]},
            {"job_name": "agent-platform-worker", "static_configs": [{"targets": [worker]}]},
        ],
    }


@dataclass
class RunningPrometheus:
    url: str
    log: Path

    def said(self) -> str:
        """The end of its log, for assertion messages."""
        return "Prometheus said:\n" + self.log.read_text(errors="replace")[-4000:]


@contextmanager
def running_prometheus(config: dict[str, Any], workdir: Path) -> Iterator[RunningPrometheus]:
    """A Prometheus run on `config`, stopped when leaving."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package; .ci/install-prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    # JSON is YAML: no YAML writer needed.
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config))
    port = free_port()
    log = workdir / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield RunningPrometheus(f"http://127.0.0.1:{port}", log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def prometheus_api(url: str, path: str, **params: str) -> Any | None:
    """The `data` of a Prometheus HTTP API answer; None while Prometheus is not answering."""
    try:
        response = httpx.get(f"{url}{path}", params=params, timeout=5.0)
    except httpx.TransportError:
        return None
    return response.json()["data"] if response.status_code == 200 else None


async def test_prometheus_scrapes_api_and_worker_and_records_the_slis(
    settings: Settings, api_url: str, services: Services, tmp_path: Path
) -> None:
    api = api_url.removeprefix("http://")
    worker = f"127.0.0.1:{settings.worker_health_port}"
    with running_prometheus(prometheus_config(api, worker), tmp_path / "prometheus") as prometheus:
        async with running_worker(services):

            def targets_up() -> dict[str, str] | None:
                data = prometheus_api(prometheus.url, "/api/v1/targets")
                health = {
                    t["labels"]["job"]: t["health"] for t in (data or {}).get("activeTargets", [])
                }
                return health if set(health) == JOBS and set(health.values()) == {"up"} else None

            await eventually_async(
                targets_up, within=WITHIN, message=lambda: "targets not up. " + prometheus.said()
            )

            def recorded(rule: str) -> float | None:
                # A request the SLIs count (401: not an error) between two scrapes: until the
                # counter moves, its rate is 0 and the ratio 0/0 (NaN).
                httpx.get(f"{api_url}/api/v1/agents", timeout=5.0)
                data = prometheus_api(prometheus.url, "/api/v1/query", query=rule)
                results = (data or {}).get("result", [])
                value = float(results[0]["value"][1]) if results else math.nan
                return None if math.isnan(value) else value

            errors = await eventually_async(
                lambda: recorded("slo:sli_error:ratio_rate5m"),
                within=WITHIN,
                message=lambda: (
                    "slo:sli_error:ratio_rate5m never had a value. " + prometheus.said()
                ),
            )
            slow = await eventually_async(
                lambda: recorded("slo:sli_latency:ratio_rate5m"),
                within=WITHIN,
                message=lambda: (
                    "slo:sli_latency:ratio_rate5m never had a value. " + prometheus.said()
                ),
            )
    assert errors == 0.0
    assert 0.0 <= slow <= 1.0
