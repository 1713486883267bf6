"""Prometheus metrics of the calls the platform makes to Kommo API v4.

`endpoint` is the templated path (`/api/v4/leads/{id}/notes`): ids never become label values,
so the number of series stays bounded however many leads an account has. The metrics live in
the default registry, so /metrics shows them in every process that imported the client (and
sums them across processes in multiprocess mode, as ops.metrics does for its own).
"""

from __future__ import annotations

import re

from prometheus_client import Counter, Histogram

KOMMO_REQUESTS = Counter(
    "kommo_requests_total",
    "Requests sent to Kommo API v4, by templated endpoint and HTTP status ('error' if none).",
    ["endpoint", "status"],
)
KOMMO_REQUEST_DURATION = Histogram(
    "kommo_request_duration_seconds",
    "Time from sending a Kommo API request to its response, by templated endpoint.",
    ["endpoint"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
KOMMO_RESPONSES_429 = Counter(
    "kommo_responses_429_total",
    "Responses '429 Too Many Requests' received from Kommo.",
)
# Apart from the rate limiter's own waits (kommo_rate_limit_wait_seconds): these are the
# waits Kommo imposed, so a rising rate_limited count means the limiter did not keep us under.
KOMMO_RETRY_WAIT_SECONDS = Histogram(
    "kommo_retry_wait_seconds",
    "Waits before repeating a request Kommo refused for now, by reason: 'rate_limited' "
    "(after a 429) or 'unavailable' (after a 5xx); _count is the number of waits.",
    ["reason"],
    buckets=(0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
)

# A path segment that is an entity id: digits (leads, notes, tasks…) or the 26-character
# lowercase ids Kommo gives events.
_ID_SEGMENT = re.compile(r"^(?:\d+|[0-9a-z]{26})$")


def endpoint_template(path: str) -> str:
    """`/api/v4/leads/123/notes` → `/api/v4/leads/{id}/notes`; query strings are dropped."""
    path = path.split("?", 1)[0]
    return "/".join("{id}" if _ID_SEGMENT.match(part) else part for part in path.split("/"))


def record_response(endpoint: str, status: int | None, seconds: float) -> None:
    KOMMO_REQUESTS.labels(endpoint, str(status) if status is not None else "error").inc()
    KOMMO_REQUEST_DURATION.labels(endpoint).observe(seconds)
    if status == 429:
        KOMMO_RESPONSES_429.inc()


def record_retry_wait(reason: str, seconds: float) -> None:
    KOMMO_RETRY_WAIT_SECONDS.labels(reason).observe(seconds)
