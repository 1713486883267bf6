"""Prometheus metrics of the calls to language models.

They live in the default registry, so /metrics shows them in every process that calls a model
(and sums counters and histograms across processes in multiprocess mode, as ops.metrics does).
"""

from __future__ import annotations

import contextlib
import uuid
from decimal import Decimal

from prometheus_client import Counter, Gauge, Histogram

from agent_platform.llm.types import Usage

LLM_REQUESTS = Counter(
    "llm_requests_total",
    "Requests to language models by model and outcome: ok, the failure (rate_limited, "
    "server_error, timeout, connection_error, rejected, stream_interrupted, abandoned), or "
    "budget_blocked (refused here, never sent).",
    ["model", "status"],
)
LLM_REQUEST_DURATION = Histogram(
    "llm_request_duration_seconds",
    "Time from sending a request to a language model to its whole answer or its failure.",
    ["model"],
    buckets=(0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0),
)
LLM_TOKENS = Counter(
    "llm_tokens_total",
    "Tokens of answered calls by model and kind (input, output).",
    ["model", "kind"],
)
LLM_COST = Counter(
    "llm_cost_usd_total",
    "Cost of answered calls in USD by model, where known (the provider's or the price table's).",
    ["model"],
)
LLM_BUDGET_USED = Gauge(
    "llm_budget_used_ratio",
    "Share of an organization's monthly LLM budget spent this month (1 and above: spent).",
    ["organization_id"],
    # Any process may compute it; the latest computation is the truth.
    multiprocess_mode="mostrecent",
)


def record_attempt(model: str, status: str, seconds: float) -> None:
    LLM_REQUESTS.labels(model, status).inc()
    LLM_REQUEST_DURATION.labels(model).observe(seconds)


def record_budget_blocked(model: str) -> None:
    LLM_REQUESTS.labels(model, "budget_blocked").inc()


def record_usage(model: str, usage: Usage) -> None:
    if usage.tokens_in is not None:
        LLM_TOKENS.labels(model, "input").inc(usage.tokens_in)
    if usage.tokens_out is not None:
        LLM_TOKENS.labels(model, "output").inc(usage.tokens_out)
    if usage.cost_usd is not None:
        LLM_COST.labels(model).inc(float(usage.cost_usd))


def set_budget_used(organization_id: uuid.UUID, ratio: Decimal | None) -> None:
    """The organization's share spent; None (no limit) removes its series."""
    if ratio is None:
        with contextlib.suppress(KeyError):
            LLM_BUDGET_USED.remove(str(organization_id))
        return
    LLM_BUDGET_USED.labels(str(organization_id)).set(float(ratio))
