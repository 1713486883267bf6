"""The sandbox sends what it promised: subscribed webhooks and its Salesbot's widget calls.

A store listener turns every change into deliveries: one for each enabled subscription whose
settings name the change (webhook_payloads.webhook_setting), its body built at once from the
record as the change left it, and one for the Salesbot's widget call. Sending happens in
tasks on the sandbox's event loop, so the change (an API call, the page's form) never waits
for a destination, and a listener called from another thread only hands the work over.

As Kommo does (https://developers.kommo.com/docs/webhooks-general): a request not answered
2xx within 2 seconds has failed and the delivery is tried again, later each time; a
subscription with 100 failed requests within 2 hours is disabled and gets nothing more.
Kommo does not publish its retry schedule: the sandbox tries four times, after 1, 5 and 25
seconds (`WebhookPolicy`; tests shorten it).

Every delivery is recorded, newest last (`deliveries()`, GET /sandbox/webhooks/deliveries).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx
import structlog

from agent_platform.crm.sandbox.store import SalesbotRun, SandboxStore
from agent_platform.crm.sandbox.webhook_payloads import (
    AccountRef,
    webhook_form,
    webhook_setting,
    widget_request,
)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
# What a delivery of the Salesbot's widget call is recorded under, beside the settings.
WIDGET_REQUEST = "widget_request"
DELIVERY_LOG_SIZE = 10_000

log = structlog.get_logger("kommo.sandbox.webhooks")


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    """When a delivery has failed, when it is tried again, when a subscription is disabled."""

    timeout_seconds: float = 2.0
    retry_delays: tuple[float, ...] = (1.0, 5.0, 25.0)
    failures_to_disable: int = 100
    failure_window_seconds: float = 2 * 60 * 60


DEFAULT_POLICY = WebhookPolicy()

DeliveryStatus = Literal["pending", "delivered", "failed"]


@dataclass(slots=True)
class Delivery:
    id: int
    destination: str
    setting: str  # the subscription's setting, or WIDGET_REQUEST
    webhook_id: int | None  # None for the widget call: no subscription answers for it
    content_type: str
    body: str
    created_at: float
    status: DeliveryStatus = "pending"
    attempts: int = 0
    error: str | None = None  # why the last attempt failed


@dataclass(slots=True)
class _FailureLog:
    """When each subscription's requests failed, within the policy's window."""

    window_seconds: float
    times: defaultdict[int, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def count(self, webhook_id: int, now: float) -> int:
        times = self.times[webhook_id]
        times.append(now)
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        return len(times)

    def forget(self, webhook_id: int) -> None:
        self.times.pop(webhook_id, None)


class WebhookSender:
    """Started and stopped with the sandbox app (its lifespan); one HTTP client for all."""

    def __init__(
        self,
        store: SandboxStore,
        account: AccountRef,
        *,
        policy: WebhookPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._account = account
        self._policy = policy
        self._clock = clock
        self._failures = _FailureLog(policy.failure_window_seconds)
        self._ids = itertools.count(1)
        self._deliveries: deque[Delivery] = deque(maxlen=DELIVERY_LOG_SIZE)
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        self._unsubscribe: Callable[[], None] | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._http = httpx.AsyncClient()
        self._unsubscribe = self._store.subscribe(self._on_change)

    async def stop(self) -> None:
        """Stop listening, cancel what is still being sent, close the client."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()

    def deliveries(self) -> list[Delivery]:
        return list(self._deliveries)

    def _on_change(self, entity: str, action: str, record: object) -> None:
        assert self._loop is not None, "subscribed only once started"
        for delivery in self._planned(entity, action, record):
            self._deliveries.append(delivery)
            self._loop.call_soon_threadsafe(self._launch, delivery)

    def _planned(self, entity: str, action: str, record: object) -> list[Delivery]:
        if isinstance(record, SalesbotRun):
            body = json.dumps(widget_request(record, self._account), ensure_ascii=False)
            return [self._delivery(record.widget_url, WIDGET_REQUEST, None, JSON, body)]
        setting = webhook_setting(entity, action, record)
        if setting is None:
            return []
        webhooks = self._store.webhooks_for(setting)
        if not webhooks:
            return []
        body = webhook_form(self._store, self._account, entity, action, record)
        return [self._delivery(w.destination, setting, w.id, FORM, body) for w in webhooks]

    def _delivery(
        self, destination: str, setting: str, webhook_id: int | None, content_type: str, body: str
    ) -> Delivery:
        return Delivery(
            next(self._ids), destination, setting, webhook_id, content_type, body, self._clock()
        )

    def _launch(self, delivery: Delivery) -> None:
        task = asyncio.create_task(self._deliver(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, delivery: Delivery) -> None:
        for pause in (0.0, *self._policy.retry_delays):
            await asyncio.sleep(pause)
            if delivery.webhook_id is not None and not self._is_enabled(delivery.webhook_id):
                delivery.error = "the subscription was disabled or removed"
                break
            delivery.attempts += 1
            delivery.error = await self._attempt(delivery)
            if delivery.error is None:
                delivery.status = "delivered"
                return
            if delivery.webhook_id is not None:
                self._count_failure(delivery.webhook_id)
        delivery.status = "failed"
        log.info(
            "sandbox_webhook_failed",
            destination=delivery.destination,
            setting=delivery.setting,
            attempts=delivery.attempts,
            error=delivery.error,
        )

    async def _attempt(self, delivery: Delivery) -> str | None:
        """None when the destination answered 2xx in time; else what went wrong."""
        assert self._http is not None, "sending only once started"
        timeout = self._policy.timeout_seconds
        try:
            # A total limit: httpx's own timeouts are per phase, and a slow trickle passes them.
            async with asyncio.timeout(timeout):
                response = await self._http.post(
                    delivery.destination,
                    content=delivery.body.encode(),
                    headers={"Content-Type": delivery.content_type},
                )
        except TimeoutError:
            return f"no answer within {timeout:g} s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.is_success else f"HTTP {response.status_code}"

    def _is_enabled(self, webhook_id: int) -> bool:
        return any(w.id == webhook_id and not w.disabled for w in self._store.webhooks())

    def _count_failure(self, webhook_id: int) -> None:
        failures = self._failures.count(webhook_id, self._clock())
        if failures < self._policy.failures_to_disable:
            return
        # A subscription removed meanwhile has nothing left to disable.
        with contextlib.suppress(KeyError):
            self._store.disable_webhook(webhook_id)
        # Subscribing again enables it afresh: the old failures no longer count.
        self._failures.forget(webhook_id)
        log.warning("sandbox_webhook_disabled", webhook_id=webhook_id, failures=failures)
