"""The sandbox sends the webhooks clients subscribed to, in Kommo's form, and gives up as Kommo.

A real receiver is served over HTTP and subscribed through the sandbox's own
`POST /api/v4/webhooks`; every body it gets must be what Kommo sends (the v2 form, see
crm/sandbox/webhook_payloads.py) and must read, with the platform's own parser, into the
typed event the change is. Failures run on an injected clock and without waits between
retries, so "100 failures within 2 hours" takes no time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import httpx
import pytest

from agent_platform.crm.kommo.webhooks import (
    EventFamily,
    IncomingMessage,
    KommoEvent,
    read_salesbot_request,
    read_webhook,
)
from agent_platform.crm.sandbox.app import create_sandbox_app, sandbox_store
from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    INCOMING_STATUS_ID,
    INITIAL_CONTACT_STATUS_ID,
    MANAGER_USER_ID,
    SALESBOT_ID,
    SandboxStore,
)
from agent_platform.crm.sandbox.webhook_sender import WebhookPolicy
from tests.support.receiver import Received, Receiver
from tests.support.servers import serve_app

TOKEN = "webhook-test-token"
TWO_HOURS = 2 * 60 * 60
# Deliveries are asynchronous; on a loaded machine they still land well within this.
DELIVERY_WAIT_SECONDS = 20.0
NO_WAITING = WebhookPolicy(retry_delays=(0.0, 0.0, 0.0))

T = TypeVar("T")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_767_225_600.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sandbox:
    http: httpx.AsyncClient
    store: SandboxStore
    clock: FakeClock

    async def subscribe(self, destination: str, *settings: str) -> int:
        response = await self.http.post(
            "/api/v4/webhooks", json={"destination": destination, "settings": list(settings)}
        )
        assert response.status_code == 200, response.text
        webhook_id: int = response.json()["id"]
        return webhook_id

    async def add_leads(self, count: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < count:
            batch = [{"name": f"Lead {len(ids) + n}"} for n in range(min(50, count - len(ids)))]
            response = await self.http.post("/api/v4/leads", json=batch)
            assert response.status_code == 200, response.text
            ids += [row["id"] for row in response.json()["_embedded"]["leads"]]
        return ids

    async def deliveries(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = (await self.http.get("/sandbox/webhooks/deliveries")).json()[
            "deliveries"
        ]
        return found

    async def settled_deliveries(self, count: int) -> list[dict[str, Any]]:
        """The deliveries, once `count` of them have finished (delivered or given up)."""

        async def settled() -> list[dict[str, Any]] | None:
            deliveries = await self.deliveries()
            done = [d for d in deliveries if d["status"] != "pending"]
            return deliveries if len(done) >= count else None

        return await _eventually(settled, f"{count} settled deliveries")

    async def is_disabled(self, destination: str) -> bool:
        response = await self.http.get(
            "/api/v4/webhooks", params={"filter[destination]": destination}
        )
        [webhook] = response.json()["_embedded"]["webhooks"]
        disabled: bool = webhook["disabled"]
        return disabled

    async def write(self, lead_id: int, text: str, author: str = "customer") -> None:
        response = await self.http.post(
            f"/sandbox/leads/{lead_id}/messages", data={"text": text, "author": author}
        )
        assert response.status_code == 303, response.text


@asynccontextmanager
async def running_sandbox(policy: WebhookPolicy = NO_WAITING) -> AsyncIterator[Sandbox]:
    clock = FakeClock()
    app = create_sandbox_app(TOKEN, clock=clock, webhook_policy=policy)
    with serve_app(app) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            # Bursts of writes here are on purpose; Kommo's 7 requests/s is tested elsewhere.
            (await http.post("/sandbox/faults", json={"rate_limit": False})).raise_for_status()
            yield Sandbox(http, sandbox_store(app), clock)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with running_sandbox() as running:
        yield running


async def _eventually(probe: Callable[[], Awaitable[T | None]], what: str) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DELIVERY_WAIT_SECONDS
    while (result := await probe()) is None:
        assert loop.time() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def _received(receiver: Receiver, count: int, path: str = "/hook") -> list[Received]:
    async def arrived() -> list[Received] | None:
        found = receiver.at(path)
        return found if len(found) >= count else None

    return await _eventually(arrived, f"{count} requests at {path}")


def _only_event(request: Received) -> KommoEvent:
    webhook = read_webhook(parse_qsl(request.body))
    assert (webhook.account_id, webhook.account_subdomain) == (ACCOUNT_ID, "sandbox")
    [event] = webhook.events
    return event


# --- what is sent ----------------------------------------------------------------------------


async def test_subscribed_changes_arrive_as_kommo_forms_the_platform_reads(
    sandbox: Sandbox,
) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        await sandbox.subscribe(
            f"{url}/hook",
            "add_lead",
            "status_lead",
            "add_task",
            "add_talk",
            "add_message",
            "add_outgoing_message",
        )
        created = await sandbox.http.post("/sandbox/leads", data={"name": "Ann Smith"})
        lead_id = int(created.headers["location"].rsplit("/", 1)[1])
        await sandbox.http.patch(
            f"/api/v4/leads/{lead_id}", json={"status_id": INITIAL_CONTACT_STATUS_ID}
        )
        await sandbox.http.post(
            "/api/v4/tasks",
            json=[
                {
                    "text": "Call Ann back",
                    "complete_till": 1_767_300_000,
                    "entity_id": lead_id,
                    "entity_type": "leads",
                }
            ],
        )
        await sandbox.write(lead_id, "Hello! How much is it?")
        await sandbox.write(lead_id, "Hi Ann, 300 USD.", author="manager")
        received = await _received(receiver, 6)

    assert {request.content_type for request in received} == {"application/x-www-form-urlencoded"}
    assert all("account%5B_links%5D%5Bself%5D=" in request.body for request in received)
    events = {(e.family, e.action): e for e in map(_only_event, received)}
    talk = sandbox.store.talk_of(lead_id)
    incoming, outgoing = sandbox.store.messages_of(lead_id)
    assert talk is not None
    assert set(events) == {
        (EventFamily.LEADS, "add"),
        (EventFamily.LEADS, "status"),
        (EventFamily.TASKS, "add"),
        (EventFamily.TALKS, "add"),
        (EventFamily.MESSAGES, "add"),
    }, "one message family holds both messages"
    added = events[EventFamily.LEADS, "add"]
    assert (added.entity_type, added.entity_id, added.data["name"]) == (
        "leads",
        lead_id,
        "Ann Smith",
    )
    status = events[EventFamily.LEADS, "status"]
    assert (status.entity_id, status.data["status_id"], status.data["old_status_id"]) == (
        lead_id,
        str(INITIAL_CONTACT_STATUS_ID),
        str(INCOMING_STATUS_ID),
    )
    task = events[EventFamily.TASKS, "add"]
    assert (task.entity_type, task.entity_id, task.data["text"]) == (
        "leads",
        lead_id,
        "Call Ann back",
    )
    talk_added = events[EventFamily.TALKS, "add"]
    assert (talk_added.item_id, talk_added.entity_type, talk_added.entity_id) == (
        str(talk.id),
        "leads",
        lead_id,
    )
    assert talk_added.data["chat_id"] == talk.chat_id
    messages = {
        event.message.direction: event.message
        for event in map(_only_event, received)
        if event.message is not None
    }
    assert messages == {
        "incoming": IncomingMessage(
            message_id=incoming.id,
            text="Hello! How much is it?",
            chat_id=talk.chat_id,
            talk_id=talk.id,
            contact_id=talk.contact_id,
            entity_type="leads",
            entity_id=lead_id,
            direction="incoming",
            author_id=talk.customer_id,
            author_name="Ann Smith",
        ),
        "outgoing": IncomingMessage(
            message_id=outgoing.id,
            text="Hi Ann, 300 USD.",
            chat_id=talk.chat_id,
            talk_id=talk.id,
            contact_id=talk.contact_id,
            entity_type="leads",
            entity_id=lead_id,
            direction="outgoing",
            author_id=str(MANAGER_USER_ID),
            author_name="Sales Manager",
        ),
    }
    assert talk.contact_id is not None, "the page creates the lead with its contact"


async def test_a_later_message_updates_the_talk(sandbox: Sandbox) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        await sandbox.subscribe(f"{url}/hook", "add_talk", "update_talk")
        lead_id = (await sandbox.add_leads(1))[0]
        await sandbox.write(lead_id, "First")
        await sandbox.write(lead_id, "Second")
        received = await _received(receiver, 2)

    assert sorted(_only_event(r).action for r in received) == ["add", "update"]


async def test_deliveries_are_recorded_with_their_outcome(sandbox: Sandbox) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        webhook_id = await sandbox.subscribe(f"{url}/hook", "add_lead")
        await sandbox.add_leads(1)
        [delivery] = await sandbox.settled_deliveries(1)

    assert {key: delivery[key] for key in ("destination", "setting", "webhook_id")} == {
        "destination": f"{url}/hook",
        "setting": "add_lead",
        "webhook_id": webhook_id,
    }
    assert (delivery["status"], delivery["attempts"], delivery["error"]) == ("delivered", 1, None)
    assert delivery["body"] == receiver.received[0].body


# --- failures --------------------------------------------------------------------------------


async def test_a_failing_destination_gets_the_same_body_again_then_is_given_up(
    sandbox: Sandbox,
) -> None:
    receiver = Receiver(status=500)
    with receiver.serving() as url:
        await sandbox.subscribe(f"{url}/hook", "add_lead")
        await sandbox.add_leads(1)
        [delivery] = await sandbox.settled_deliveries(1)

    assert (delivery["status"], delivery["attempts"], delivery["error"]) == (
        "failed",
        1 + len(NO_WAITING.retry_delays),
        "HTTP 500",
    )
    assert [r.body for r in receiver.received] == [delivery["body"]] * delivery["attempts"]


async def test_an_answer_later_than_the_timeout_is_a_failure() -> None:
    receiver = Receiver(delay=1.0)
    async with running_sandbox(WebhookPolicy(timeout_seconds=0.1, retry_delays=())) as sandbox:
        with receiver.serving() as url:
            await sandbox.subscribe(f"{url}/hook", "add_lead")
            await sandbox.add_leads(1)
            [delivery] = await sandbox.settled_deliveries(1)

    assert (delivery["status"], delivery["error"]) == ("failed", "no answer within 0.1 s")


async def test_a_hundred_failed_requests_disable_the_subscription(sandbox: Sandbox) -> None:
    receiver = Receiver(status=503)
    attempts_per_change = 1 + len(NO_WAITING.retry_delays)
    with receiver.serving() as url:
        destination = f"{url}/hook"
        await sandbox.subscribe(destination, "add_lead")
        await sandbox.add_leads(100 // attempts_per_change)
        await sandbox.settled_deliveries(100 // attempts_per_change)
        assert await sandbox.is_disabled(destination)
        assert len(receiver.received) == 100

        await sandbox.add_leads(1)

    assert len(await sandbox.deliveries()) == 100 // attempts_per_change, "nothing more planned"


async def test_failures_older_than_two_hours_do_not_count() -> None:
    async with running_sandbox(WebhookPolicy(retry_delays=())) as sandbox:
        receiver = Receiver(status=500)
        with receiver.serving() as url:
            destination = f"{url}/hook"
            await sandbox.subscribe(destination, "add_lead")
            await sandbox.add_leads(99)
            await sandbox.settled_deliveries(99)
            sandbox.clock.now += TWO_HOURS

            await sandbox.add_leads(1)
            await sandbox.settled_deliveries(100)

            assert not await sandbox.is_disabled(destination)


# --- who gets nothing ------------------------------------------------------------------------


async def test_unsubscribed_disabled_and_removed_destinations_get_nothing(
    sandbox: Sandbox,
) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        lead_hook = await sandbox.subscribe(f"{url}/leads", "add_lead")
        await sandbox.subscribe(f"{url}/contacts", "add_contact")
        await sandbox.subscribe(f"{url}/removed", "add_lead")
        removed = await sandbox.http.request(
            "DELETE", "/api/v4/webhooks", json={"destination": f"{url}/removed"}
        )
        assert removed.status_code == 204
        await sandbox.add_leads(1)
        await _received(receiver, 1, "/leads")

        sandbox.store.disable_webhook(lead_hook)
        await sandbox.add_leads(1)

    deliveries = await sandbox.deliveries()
    assert [(d["destination"], d["status"]) for d in deliveries] == [(f"{url}/leads", "delivered")]
    assert [r.path for r in receiver.received] == ["/leads"]


# --- the Salesbot's widget call --------------------------------------------------------------


async def test_with_a_widget_set_the_salesbot_calls_it_with_the_customers_message(
    sandbox: Sandbox,
) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        widget = await sandbox.http.put("/sandbox/salesbot/widget", json={"url": f"{url}/bot"})
        assert widget.status_code == 200, widget.text
        lead_id = (await sandbox.add_leads(1))[0]
        await sandbox.write(lead_id, "Do you ship abroad?")
        await sandbox.write(lead_id, "Thanks!", author="manager")
        [call] = await _received(receiver, 1, "/bot")
        await sandbox.settled_deliveries(1)

    request = read_salesbot_request(json.loads(call.body))
    [run] = sandbox.store.salesbot_runs_of(lead_id)
    talk = sandbox.store.talk_of(lead_id)
    assert talk is not None
    assert call.content_type == "application/json"
    assert (request.bot_id, request.continue_id) == (SALESBOT_ID, run.continue_id)
    assert (request.message.text, request.message.entity_type, request.message.entity_id) == (
        "Do you ship abroad?",
        "leads",
        lead_id,
    )
    assert (request.message.chat_id, request.message.talk_id) == (talk.chat_id, talk.id)
    assert len(receiver.at("/bot")) == 1, "a manager's message starts no bot"


async def test_a_widget_address_that_is_no_url_is_refused(sandbox: Sandbox) -> None:
    response = await sandbox.http.put("/sandbox/salesbot/widget", json={"url": "not a url"})

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert sandbox.store.salesbot_widget_url is None
