"""The sandbox's page: a person picks or creates a lead, writes, and reads the replies in place.

Everything goes over real HTTP to a running sandbox. The replies are made the way the platform
makes them: a note through API v4, a Chats API message signed by the platform's own signer
and addressed with the ids the message webhook carries, and a Salesbot continue of the run
the customer's message started.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest

from agent_platform.crm.kommo.delivery.chats import (
    ChatAddress,
    new_message_body,
    new_message_path,
    signed_headers,
)
from agent_platform.crm.kommo.delivery.salesbot import continue_body
from agent_platform.crm.sandbox.app import create_sandbox_app, sandbox_store
from agent_platform.crm.sandbox.chats import CHANNEL_BOT_ID, CHANNEL_SCOPE_ID, CHANNEL_SECRET
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID, SandboxStore
from tests.support.receiver import Receiver
from tests.support.servers import serve_app

TOKEN = "page-test-token"
_ENTRY = re.compile(r'<li class="entry (\w+)">.*?<p class="text">(.*?)</p>', re.DOTALL)


@dataclass
class Sandbox:
    http: httpx.AsyncClient
    store: SandboxStore

    async def create_lead(self, name: str) -> int:
        response = await self.http.post("/sandbox/leads", data={"name": name})
        assert response.status_code == 303, response.text
        return int(response.headers["location"].rsplit("/", 1)[1])

    async def write(self, lead_id: int, text: str, author: str = "customer") -> httpx.Response:
        return await self.http.post(
            f"/sandbox/leads/{lead_id}/messages", data={"text": text, "author": author}
        )

    async def timeline(self, lead_id: int) -> list[tuple[str, str]]:
        """(kind, text) of each entry the lead's page shows, in order; text as the page has it."""
        response = await self.http.get(f"/sandbox/leads/{lead_id}")
        assert response.status_code == 200, response.text
        return _ENTRY.findall(response.text)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    app = create_sandbox_app(TOKEN)
    with serve_app(app) as url:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=url, headers=headers) as http:
            yield Sandbox(http, sandbox_store(app))


# --- leads -----------------------------------------------------------------------------------


async def test_the_leads_page_lists_leads_and_creates_one_with_its_contact(
    sandbox: Sandbox,
) -> None:
    lead_id = await sandbox.create_lead("Ann Smith")

    lead = sandbox.store.get_lead(lead_id)
    assert lead is not None
    [contact_id] = lead.contact_ids
    contact = sandbox.store.get_contact(contact_id)
    assert (lead.name, contact.name if contact else None) == ("Ann Smith", "Ann Smith")
    page = (await sandbox.http.get("/sandbox/")).text
    assert f'href="{sandbox.http.base_url}/sandbox/leads/{lead_id}"' in page
    assert f"/sandbox/leads/{DEMO_LEAD_ID}" in page


@pytest.mark.parametrize("name", ["", "   ", "x" * 256])
async def test_a_lead_without_a_fitting_name_is_refused_and_nothing_is_created(
    sandbox: Sandbox, name: str
) -> None:
    leads_before = sandbox.store.leads()

    response = await sandbox.http.post("/sandbox/leads", data={"name": name})

    assert response.status_code == 400
    assert "Give the lead a name of 1 to 255 characters." in response.text
    assert sandbox.store.leads() == leads_before


# --- the conversation ------------------------------------------------------------------------


async def test_customer_and_manager_messages_show_in_order_and_escaped(sandbox: Sandbox) -> None:
    lead_id = await sandbox.create_lead("Ann")

    first = await sandbox.write(lead_id, "Is <b>this</b> & that in stock?")
    await sandbox.write(lead_id, "Yes, both.", author="manager")
    await sandbox.write(lead_id, "<script>alert(1)</script>")

    assert first.status_code == 303
    assert first.headers["location"].endswith(f"/sandbox/leads/{lead_id}")
    assert await sandbox.timeline(lead_id) == [
        ("customer", html.escape("Is <b>this</b> & that in stock?")),
        ("manager", "Yes, both."),
        ("customer", html.escape("<script>alert(1)</script>")),
    ]
    [incoming, outgoing, _] = sandbox.store.messages_of(lead_id)
    assert (incoming.direction, outgoing.direction) == ("incoming", "outgoing")


@pytest.mark.parametrize(
    ("text", "author", "reason"),
    [
        ("", "customer", "Write a message of 1 to 10000 characters."),
        ("  \n ", "customer", "Write a message of 1 to 10000 characters."),
        ("x" * 10_001, "customer", "Write a message of 1 to 10000 characters."),
        ("Hi", "robot", "Write as the customer or as a manager."),
    ],
)
async def test_a_message_that_cannot_be_taken_is_refused_and_changes_nothing(
    sandbox: Sandbox, text: str, author: str, reason: str
) -> None:
    response = await sandbox.write(DEMO_LEAD_ID, text, author)

    assert response.status_code == 400
    assert reason in response.text
    assert sandbox.store.messages_of(DEMO_LEAD_ID) == []
    assert sandbox.store.talk_of(DEMO_LEAD_ID) is None


async def test_an_unknown_lead_is_not_found(sandbox: Sandbox) -> None:
    page = await sandbox.http.get("/sandbox/leads/999999")
    written = await sandbox.write(999_999, "Hello?")

    assert (page.status_code, written.status_code) == (404, 404)
    assert written.headers["content-type"] == "application/problem+json"


# --- the platform's replies, each on its lead ------------------------------------------------


async def test_a_note_on_the_lead_shows_as_the_agents_reply(sandbox: Sandbox) -> None:
    lead_id = await sandbox.create_lead("Ann")
    other_id = await sandbox.create_lead("Bob")
    await sandbox.write(lead_id, "How much?")

    for entity_id, text in ((lead_id, "300 USD."), (other_id, "Not Ann's")):
        response = await sandbox.http.post(
            "/api/v4/leads/notes",
            json=[{"entity_id": entity_id, "note_type": "common", "params": {"text": text}}],
        )
        assert response.status_code == 200, response.text

    assert await sandbox.timeline(lead_id) == [("customer", "How much?"), ("note", "300 USD.")]


async def test_a_chats_reply_lands_in_the_chat_its_webhook_named(sandbox: Sandbox) -> None:
    lead_id = await sandbox.create_lead("Ann")
    other_id = await sandbox.create_lead("Bob")
    await sandbox.write(lead_id, "How much?")
    await sandbox.write(other_id, "Hello")
    talk = sandbox.store.talk_of(lead_id)
    assert talk is not None
    # Addressed as the platform addresses it: the chat and author ids of the message webhook.
    address = ChatAddress(
        scope_id=CHANNEL_SCOPE_ID,
        chat_id=talk.chat_id,
        customer_id=talk.customer_id,
        customer_name=talk.customer_name,
        bot_id=CHANNEL_BOT_ID,
        bot_name="Agent",
    )
    now = datetime.now(UTC)
    body = new_message_body(address, "300 USD.", msgid="reply-1", at=now)
    content = httpx.Request("POST", "/", json=body).content
    path = new_message_path(CHANNEL_SCOPE_ID)
    headers = signed_headers(CHANNEL_SECRET, method="POST", path=path, body=content, now=now)

    response = await sandbox.http.post(path, content=content, headers=headers)

    assert response.status_code == 200, response.text
    assert await sandbox.timeline(lead_id) == [("customer", "How much?"), ("chat", "300 USD.")]
    assert await sandbox.timeline(other_id) == [("customer", "Hello")]


async def test_a_salesbot_answer_shows_on_the_lead_whose_message_started_the_bot(
    sandbox: Sandbox,
) -> None:
    receiver = Receiver()
    answer = "Yes, we ship to 40 countries. Delivery takes five to ten working days."
    with receiver.serving() as url:
        widget = await sandbox.http.put("/sandbox/salesbot/widget", json={"url": f"{url}/bot"})
        assert widget.status_code == 200, widget.text
        lead_id = await sandbox.create_lead("Ann")
        await sandbox.write(lead_id, "Do you ship abroad?")
        [run] = sandbox.store.salesbot_runs_of(lead_id)

        response = await sandbox.http.post(
            f"/api/v4/salesbot/{run.bot_id}/continue/{run.continue_id}",
            json=continue_body(answer + " Customs are included in the price you see."),
        )

    assert response.status_code == 200, response.text
    assert await sandbox.timeline(lead_id) == [
        ("customer", "Do you ship abroad?"),
        ("salesbot", answer),
        ("salesbot", "Customs are included in the price you see."),
    ]


# --- the page itself -------------------------------------------------------------------------


async def test_the_timeline_refreshes_from_its_own_route(sandbox: Sandbox) -> None:
    await sandbox.write(DEMO_LEAD_ID, "Anyone there?")

    page = (await sandbox.http.get(f"/sandbox/leads/{DEMO_LEAD_ID}")).text
    part = await sandbox.http.get(f"/sandbox/leads/{DEMO_LEAD_ID}/timeline")

    assert (
        f'data-refresh-url="{sandbox.http.base_url}/sandbox/leads/{DEMO_LEAD_ID}/timeline"' in page
    )
    assert part.status_code == 200
    assert _ENTRY.findall(part.text) == [("customer", "Anyone there?")]


async def test_the_page_uses_its_own_static_files_and_no_inline_script(sandbox: Sandbox) -> None:
    page = (await sandbox.http.get(f"/sandbox/leads/{DEMO_LEAD_ID}")).text

    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.DOTALL)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert scripts, "the page refreshes itself with a script"
    assert all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assert all(source.startswith(str(sandbox.http.base_url)) for source in sources)
    for name, media_type in (("sandbox.css", "text/css"), ("sandbox.js", "text/javascript")):
        response = await sandbox.http.get(f"/sandbox/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
