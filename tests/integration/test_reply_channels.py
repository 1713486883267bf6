"""Replies through the Chats API and through a Salesbot, against the sandbox over real HTTP.

The end-to-end tests post to the platform's API and let a real worker loop answer. The retry
tests stop a first attempt right after Kommo got the reply (the delivery cannot be marked
sent, as when a worker dies there) and run the job again: the customer still gets one reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from agent_platform.agent.service import answer_inbox_event
from agent_platform.crm import repository
from agent_platform.crm.kommo.errors import KommoValidationError
from agent_platform.crm.models import CrmDelivery, InboxEvent
from agent_platform.crm.sandbox.chats import CHANNEL_BOT_ID, CHANNEL_SCOPE_ID, CHANNEL_SECRET
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.factories import (
    CUSTOMER_CHAT_ID,
    ConnectedAgent,
    message_form,
    receive_webhook,
    use_reply_channel,
)
from tests.support.worker import running_worker

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers
DEADLINE_SECONDS = 30.0


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


async def use_chats(
    services: Services, connected: ConnectedAgent, sandbox_url: str, secret: str = CHANNEL_SECRET
) -> None:
    await use_reply_channel(
        services,
        connected.connection_id,
        "chats",
        chats_scope_id=CHANNEL_SCOPE_ID,
        chats_secret=secret,
        chats_bot_id=CHANNEL_BOT_ID,
        chats_api_url=sandbox_url,
    )


async def sandbox_json(sandbox_url: str, path: str, key: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        response = await client.get(path)
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()[key]
    return found


async def chat_messages(sandbox_url: str) -> list[dict[str, Any]]:
    return await sandbox_json(sandbox_url, "/sandbox/chats/messages", "messages")


async def continues(sandbox_url: str) -> list[dict[str, Any]]:
    return await sandbox_json(sandbox_url, "/sandbox/salesbot/continues", "continues")


async def notes(sandbox_url: str) -> list[dict[str, Any]]:
    return await sandbox_json(sandbox_url, "/sandbox/notes", "notes")


async def eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def inbox_status(services: Services, dedupe_key: str) -> str | None:
    async with transaction(services.sessions) as session:
        return await session.scalar(
            select(InboxEvent.status).where(InboxEvent.dedupe_key == dedupe_key)
        )


async def event_settled(services: Services, dedupe_key: str) -> bool:
    return await inbox_status(services, dedupe_key) in ("handled", "failed")


async def event_id(services: Services, dedupe_key: str) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        found = await session.scalar(
            select(InboxEvent.id).where(InboxEvent.dedupe_key == dedupe_key)
        )
    assert found is not None
    return found


async def the_delivery(services: Services) -> CrmDelivery:
    async with transaction(services.sessions) as session:
        return (await session.scalars(select(CrmDelivery))).one()


async def job_states(services: Services) -> list[tuple[str, int]]:
    async with transaction(services.sessions) as session:
        rows = await session.execute(text("SELECT status, attempts FROM procrastinate_jobs"))
        return [(row.status, row.attempts) for row in rows]


def widget_request(continue_id: int) -> dict[str, Any]:
    """A widget_request as Kommo's Salesbot posts it (Kommo, "Private Chatbot integration")."""
    return {
        "token": "eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl",
        "data": {"message": "Do you ship abroad?", "lead_id": str(DEMO_LEAD_ID)},
        "return_url": f"https://sandbox.kommo.com/api/v4/salesbot/321/continue/{continue_id}",
    }


@contextlib.contextmanager
def crash_after_sending(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The first attempt reaches Kommo, then cannot record it, as when its worker dies."""

    async def worker_died(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the worker died after sending")

    with monkeypatch.context() as patch:
        patch.setattr(repository, "mark_delivery_sent", worker_died)
        yield


# --- Chats API ------------------------------------------------------------------------------


async def test_the_agent_answers_in_the_chat_through_the_chats_api(
    services: Services,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    worker: None,
) -> None:
    sandbox_url = sandbox[0]
    await use_chats(services, connected, sandbox_url)
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("chat-msg-1", "How much is it?", lead_id=DEMO_LEAD_ID),
        )
    assert response.json()["accepted"] == 1

    await eventually(lambda: event_settled(services, "message:chat-msg-1"), "the answer")
    assert await inbox_status(services, "message:chat-msg-1") == "handled"
    [message] = await chat_messages(sandbox_url)
    assert message["text"] == LLM_REPLY
    assert message["conversation_ref_id"] == "chat-1"
    assert message["receiver"] == {
        "id": CUSTOMER_CHAT_ID,
        "ref_id": CUSTOMER_CHAT_ID,
        "name": "Ann",
    }
    assert message["sender"]["ref_id"] == CHANNEL_BOT_ID
    delivery = await the_delivery(services)
    assert (delivery.kind, delivery.status, delivery.attempts) == ("chats", "sent", 1)
    assert delivery.external_ref == message["id"]
    assert await notes(sandbox_url) == []


async def test_a_retried_chat_reply_reaches_the_customer_once(
    services: Services,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox_url = sandbox[0]
    await use_chats(services, connected, sandbox_url)
    await receive_webhook(
        services, connected, message_form("chat-msg-2", "Hi", lead_id=DEMO_LEAD_ID)
    )
    inbox_event = await event_id(services, "message:chat-msg-2")

    with crash_after_sending(monkeypatch), pytest.raises(RuntimeError, match="worker died"):
        await answer_inbox_event(services, inbox_event)
    [sent_once] = await chat_messages(sandbox_url)
    assert (await the_delivery(services)).status == "pending"

    await answer_inbox_event(services, inbox_event)

    assert await chat_messages(sandbox_url) == [sent_once]
    delivery = await the_delivery(services)
    assert (delivery.status, delivery.attempts, delivery.external_ref) == (
        "sent",
        2,
        sent_once["id"],
    )
    assert await inbox_status(services, "message:chat-msg-2") == "handled"


async def test_a_refused_signature_fails_the_event_without_retrying(
    services: Services,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    worker: None,
) -> None:
    sandbox_url = sandbox[0]
    await use_chats(services, connected, sandbox_url, secret="not-the-channel-secret")
    async with httpx.AsyncClient(base_url=api_url) as client:
        await client.post(
            f"/webhooks/kommo/{connected.webhook_token}",
            data=message_form("chat-msg-3", "Hi", lead_id=DEMO_LEAD_ID),
        )

    await eventually(lambda: event_settled(services, "message:chat-msg-3"), "the job to end")
    assert await inbox_status(services, "message:chat-msg-3") == "failed"
    await eventually(lambda: _jobs_done(services), "the job to be marked failed")
    assert await job_states(services) == [("failed", 1)]
    assert await chat_messages(sandbox_url) == []


async def _jobs_done(services: Services) -> bool:
    return all(status not in ("todo", "doing") for status, _ in await job_states(services))


# --- Salesbot -------------------------------------------------------------------------------


async def post_widget_request(api_url: str, connected: ConnectedAgent, continue_id: int) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        response = await client.post(
            f"/webhooks/kommo/{connected.webhook_token}/salesbot",
            json=widget_request(continue_id),
        )
    assert response.json()["accepted"] == 1


async def test_the_agent_continues_the_salesbot_with_its_reply_in_pieces(
    services: Services,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    fake_llm_url: str,
    worker: None,
) -> None:
    sandbox_url = sandbox[0]
    long_reply = (
        "Yes, we ship abroad: to the whole of Europe in three to five days, and to the rest "
        "of the world in about two weeks. Shipping is free above 200 USD. Where should it go?"
    )
    async with httpx.AsyncClient() as client:
        (
            await client.post(f"{fake_llm_url}/_fake/config", json={"reply": long_reply})
        ).raise_for_status()
    await post_widget_request(api_url, connected, continue_id=654)

    await eventually(lambda: event_settled(services, "salesbot:321:654"), "the answer")
    assert await inbox_status(services, "salesbot:321:654") == "handled"
    [recorded] = await continues(sandbox_url)
    assert (recorded["bot_id"], recorded["continue_id"]) == (321, 654)
    assert recorded["data"] == {"reply": long_reply}
    shown = [h["params"]["value"] for h in recorded["execute_handlers"]]
    assert len(shown) > 1
    assert all(len(piece) <= 80 for piece in shown)
    assert " ".join(shown) == long_reply
    delivery = await the_delivery(services)
    assert (delivery.kind, delivery.status, delivery.attempts) == ("salesbot", "sent", 1)
    assert await notes(sandbox_url) == []


async def test_a_retried_salesbot_answer_is_given_once(
    services: Services,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox_url = sandbox[0]
    await post_widget_request(api_url, connected, continue_id=655)
    inbox_event = await event_id(services, "salesbot:321:655")

    with crash_after_sending(monkeypatch), pytest.raises(RuntimeError, match="worker died"):
        await answer_inbox_event(services, inbox_event)
    [continued_once] = await continues(sandbox_url)

    # Kommo refuses the second continue of continue_id 655: the first one got there.
    await answer_inbox_event(services, inbox_event)

    assert await continues(sandbox_url) == [continued_once]
    delivery = await the_delivery(services)
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert await inbox_status(services, "salesbot:321:655") == "handled"


async def test_a_refused_first_continue_is_a_failure_not_a_delivery(
    services: Services,
    api_url: str,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
) -> None:
    sandbox_url, token = sandbox
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        # Someone else continued this bot already: no attempt of ours can have been it.
        taken = await client.post(
            "/api/v4/salesbot/321/continue/656",
            json={"data": {}, "execute_handlers": []},
            headers={"Authorization": f"Bearer {token}"},
        )
    taken.raise_for_status()
    await post_widget_request(api_url, connected, continue_id=656)

    with pytest.raises(KommoValidationError):
        await answer_inbox_event(services, await event_id(services, "salesbot:321:656"))

    delivery = await the_delivery(services)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert len(await continues(sandbox_url)) == 1
