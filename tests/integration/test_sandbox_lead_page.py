"""A person writes on the sandbox's page, the real platform answers, the reply shows on the page.

The sandbox, the platform's api and a worker loop run as in test_reply_path.py, against the
fake LLM. The connection's webhook is subscribed in the sandbox through its API, as
connecting an account does; the customer's message goes in through the page's form, reaches
the platform as the webhook the sandbox sends, and the agent's reply must come back into the
page's timeline, by each reply channel.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_platform.crm.sandbox.chats import CHANNEL_BOT_ID, CHANNEL_SCOPE_ID, CHANNEL_SECRET
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.services import Services
from tests.support.clients import sandbox_sending_webhooks
from tests.support.factories import ConnectedAgent, use_reply_channel
from tests.support.worker import running_worker

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers
DEADLINE_SECONDS = 30.0
_ENTRY = re.compile(r'<li class="entry (\w+)">.*?<p class="text">(.*?)</p>', re.DOTALL)


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


@pytest.fixture
async def kommo(
    sandbox: tuple[str, str], api_url: str, connected: ConnectedAgent
) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox, with the connection's webhook subscribed to chats and notes."""
    destination = f"{api_url}/webhooks/kommo/{connected.webhook_token}"
    settings = ["add_talk", "add_message", "add_outgoing_message", "note_lead"]
    async with sandbox_sending_webhooks(sandbox, destination, settings) as kommo:
        yield kommo


async def write_as_customer(kommo: httpx.AsyncClient, text: str) -> None:
    response = await kommo.post(
        f"/sandbox/leads/{DEMO_LEAD_ID}/messages", data={"text": text, "author": "customer"}
    )
    assert response.status_code == 303, response.text


async def reply_on_page(kommo: httpx.AsyncClient) -> list[tuple[str, str]]:
    """The lead's timeline as the page shows it, once it holds something besides the customer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        page = await kommo.get(f"/sandbox/leads/{DEMO_LEAD_ID}")
        entries: list[tuple[str, str]] = _ENTRY.findall(page.text)
        if any(kind != "customer" for kind, _ in entries):
            return entries
        assert loop.time() < deadline, f"no reply on the page; deliveries: {await _sent(kommo)}"
        await asyncio.sleep(0.2)


async def _sent(kommo: httpx.AsyncClient) -> object:
    return (await kommo.get("/sandbox/webhooks/deliveries")).json()["deliveries"]


async def test_the_agents_note_shows_on_the_page(kommo: httpx.AsyncClient, worker: None) -> None:
    await write_as_customer(kommo, "How much is it?")

    assert await reply_on_page(kommo) == [("customer", "How much is it?"), ("note", LLM_REPLY)]


async def test_the_agents_chat_message_shows_on_the_page(
    kommo: httpx.AsyncClient,
    services: Services,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    worker: None,
) -> None:
    await use_reply_channel(
        services,
        connected.connection_id,
        "chats",
        chats_scope_id=CHANNEL_SCOPE_ID,
        chats_secret=CHANNEL_SECRET,
        chats_bot_id=CHANNEL_BOT_ID,
        chats_api_url=sandbox[0],
    )

    await write_as_customer(kommo, "How much is it?")

    assert await reply_on_page(kommo) == [("customer", "How much is it?"), ("chat", LLM_REPLY)]


async def test_the_agents_salesbot_answer_shows_on_the_page(
    kommo: httpx.AsyncClient,
    services: Services,
    connected: ConnectedAgent,
    api_url: str,
    worker: None,
) -> None:
    await use_reply_channel(services, connected.connection_id, "salesbot")
    widget = f"{api_url}/webhooks/kommo/{connected.webhook_token}/salesbot"
    assert (await kommo.put("/sandbox/salesbot/widget", json={"url": widget})).status_code == 200

    await write_as_customer(kommo, "How much is it?")

    assert await reply_on_page(kommo) == [
        ("customer", "How much is it?"),
        ("salesbot", LLM_REPLY),
    ]
