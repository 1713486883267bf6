"""docs/metrics.md lists every metric the platform exports.

Here: every metric registered by the api's and the worker's modules. The integration tests
(tests/integration/test_metrics.py) run `undocumented` on real scrapes of a running api and
worker as well, which adds the families computed at scrape time.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
# A row of the tables in docs/metrics.md: | `name` | type | labels | process | meaning |
_DOCUMENTED = re.compile(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \|", re.MULTILINE)


def documented_names() -> set[str]:
    return set(_DOCUMENTED.findall(DOCS.read_text()))


def exported_names(exposition: str) -> set[str]:
    """The names as they appear in the exposition: counters with their `_total`. The
    `_created` timestamps prometheus-client adds beside counters and histograms are not
    metrics of their own."""
    names = set()
    for family in text_string_to_metric_families(exposition):
        if family.name.endswith("_created"):
            continue
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def undocumented(exposition: str) -> list[str]:
    """Metric names in `exposition` that docs/metrics.md does not list."""
    return sorted(exported_names(exposition) - documented_names())


def test_every_metric_the_api_and_worker_register_is_documented() -> None:
    import agent_platform.app
    import agent_platform.queue.worker  # noqa: F401 - registering their metrics is the point

    assert undocumented(generate_latest(REGISTRY).decode()) == []


def test_a_metric_missing_from_the_docs_is_named() -> None:
    registry = CollectorRegistry()
    Counter("http_requests_total", "documented", registry=registry)
    Counter("surprise_events_total", "not documented", registry=registry)
    Gauge("surprise_level", "not documented", registry=registry)

    assert undocumented(generate_latest(registry).decode()) == [
        "surprise_events_total",
        "surprise_level",
    ]
