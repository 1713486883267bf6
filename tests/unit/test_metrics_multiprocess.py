"""With PROMETHEUS_MULTIPROC_DIR, /metrics adds up what every process counted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COUNT = (
    "from agent_platform.ops import metrics;"
    "metrics.WEBHOOKS_RECEIVED.labels(source='kommo', result='accepted').inc(3);"
    "metrics.HTTP_DURATION.labels(route='/x', method='GET').observe(0.2)"
)
RENDER = (
    "from prometheus_client import generate_latest;"
    "from agent_platform.ops.metrics import process_registry;"
    "print(generate_latest(process_registry()).decode())"
)


def python(code: str, metrics_dir: Path) -> str:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    completed = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout


def test_counters_and_histograms_sum_across_processes(tmp_path: Path) -> None:
    python(COUNT, tmp_path)
    python(COUNT, tmp_path)
    exposition = python(RENDER, tmp_path)
    assert 'webhooks_received_total{result="accepted",source="kommo"} 6.0' in exposition
    assert 'http_request_duration_seconds_count{method="GET",route="/x"} 2.0' in exposition
