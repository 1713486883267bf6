"""A webhook action's request: a signed JSON POST to a URL an admin chose, never into our network.

The URL was checked when the action was saved (`check_webhook_url`); at each call the host is
resolved again and every address checked (kit.safe_fetch), and the connection goes to the
address that was checked, so a name cannot point elsewhere between check and call (DNS
rebinding). Redirects are not followed: a 3xx is an answer like any other non-2xx.

The receiver verifies a call by recomputing the signature over the exact body with the
organization's signing secret (GET /api/v1/automation/webhook-secret), and may refuse an old
timestamp (replays) or a delivery id it has seen (repeats after a retried job).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from agent_platform.kit.safe_fetch import (
    HostNotResolvedError,
    UnsafeUrlError,
    check_url,
    checked_target,
)

SIGNATURE_HEADER = "X-Agent-Platform-Signature"
DELIVERY_HEADER = "X-Agent-Platform-Delivery"
USER_AGENT = "GPT-Agent-Platform/1 (+automation webhook)"
REFUSAL = "webhooks may only call public addresses"
# How much of the receiver's answer is kept in the run log.
BODY_EXCERPT_BYTES = 2_000


@dataclass(frozen=True)
class WebhookResponse:
    status_code: int
    body_excerpt: str


def signing_secret(secret_key: str, organization_id: uuid.UUID) -> str:
    """The organization's own secret, derived so that one receiver cannot forge another's calls."""
    message = f"automation-webhook:{organization_id}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: the time signed together with the body, against replays."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def check_webhook_url(url: str, *, allow_private_networks: bool) -> None:
    """What can be refused when the URL is saved: not http(s), credentials in it (they would be
    stored and shown in the run log), a literal non-public address or "localhost"."""
    parsed = check_url(url, allow_private_networks=allow_private_networks, refusal=REFUSAL)
    if parsed.userinfo:
        raise UnsafeUrlError(
            "a webhook URL cannot carry credentials; "
            "receivers verify calls by the signature header instead."
        )


async def call_webhook(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str,
    delivery_id: str,
    timeout_seconds: float,
    allow_private_networks: bool,
) -> WebhookResponse:
    """POST `payload` as JSON to `url`; any answer, 2xx or not, is returned.

    Raises UnsafeUrlError for a refused URL or address (before connecting); an unresolvable
    host, a network failure or no answer within `timeout_seconds` raise httpx errors, which
    are transient: the job retries with the same delivery id.
    """
    check_webhook_url(url, allow_private_networks=allow_private_networks)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret, int(time.time()), body),
        DELIVERY_HEADER: delivery_id,
    }
    try:
        async with asyncio.timeout(timeout_seconds):
            return await _post(url, body, headers, timeout_seconds, allow_private_networks)
    except TimeoutError as exc:
        raise httpx.TimeoutException(
            f"{url} did not answer within {timeout_seconds:g} seconds."
        ) from exc


async def _post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_seconds: float,
    allow_private_networks: bool,
) -> WebhookResponse:
    try:
        target = await checked_target(
            url, allow_private_networks=allow_private_networks, refusal=REFUSAL
        )
    except HostNotResolvedError as exc:
        raise httpx.ConnectError(exc.message) from exc
    # As in safe_fetch: no pooled connection (it could serve another name at the address)
    # and no proxy from the environment (we connect to the address we checked).
    async with httpx.AsyncClient(
        trust_env=False,
        timeout=timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        request = target.build_request(client, "POST", headers=headers, content=body)
        response = await client.send(request, stream=True)
        try:
            excerpt = await _read_excerpt(response)
        finally:
            await response.aclose()
    return WebhookResponse(response.status_code, excerpt)


async def _read_excerpt(response: httpx.Response) -> str:
    received = bytearray()
    async for piece in response.aiter_bytes():
        received += piece
        if len(received) >= BODY_EXCERPT_BYTES:
            break
    return bytes(received[:BODY_EXCERPT_BYTES]).decode("utf-8", errors="replace")
