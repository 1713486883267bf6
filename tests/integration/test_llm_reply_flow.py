"""The reply flow calls the model through the gateway: its call is recorded and paid for by the
organization's budget, and a spent budget does not leave the customer in silence: with nothing
sure to answer from, a person takes over."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from agent_platform.agent.service import answer_inbox_event
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import read_webhook
from agent_platform.crm.models import CrmTask, InboxEvent
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.llm import service as llm_service
from agent_platform.llm.models import LlmCall
from agent_platform.services import Services
from tests.support.factories import ConnectedAgent, message_form


async def receive_message(services: Services, connected: ConnectedAgent, text: str) -> uuid.UUID:
    """The customer's message accepted as Kommo's webhook brings it; its inbox event's id."""
    form = message_form(f"m-{uuid.uuid4().hex[:8]}", text, lead_id=DEMO_LEAD_ID)
    async with transaction(services.sessions) as session:
        await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connected.webhook_token,
            webhook=read_webhook(form.items()),
        )
        return (await session.scalars(select(InboxEvent.id))).one()


async def sandbox_notes(sandbox_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        notes: list[dict[str, Any]] = (await client.get(f"{sandbox_url}/sandbox/notes")).json()[
            "notes"
        ]
    return notes


async def chat_requests(fake_llm_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        recorded = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    return [r for r in recorded if r["path"] == "/v1/chat/completions"]


async def test_the_reply_call_is_recorded_for_the_agent_and_its_conversation(
    services: Services, connected: ConnectedAgent, fake_llm_url: str
) -> None:
    async with httpx.AsyncClient() as client:
        await client.post(f"{fake_llm_url}/_fake/config", json={"cost": 0.0031})
    event_id = await receive_message(services, connected, "How much is it?")

    await answer_inbox_event(services, event_id)

    async with transaction(services.sessions) as session:
        call = (await session.scalars(select(LlmCall))).one()
        conversation = (await session.scalars(select(Conversation))).one()
        reply = (await session.scalars(select(Message).where(Message.role == "assistant"))).one()
    assert (call.status, call.model_used) == ("ok", "test/model")
    assert (call.organization_id, call.agent_id, call.conversation_id) == (
        connected.organization_id,
        connected.agent_id,
        conversation.id,
    )
    assert (reply.model, reply.cost_usd) == ("test/model", Decimal("0.0031"))
    assert (reply.tokens_in, reply.tokens_out) == (call.tokens_in, call.tokens_out)


async def test_a_spent_budget_hands_over_without_asking_the_model(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str], fake_llm_url: str
) -> None:
    await llm_service.set_budget(
        services,
        connected.organization_id,
        monthly_limit_usd=Decimal(0),
        warning_ratio=Decimal("0.8"),
    )
    event_id = await receive_message(services, connected, "Do you ship to Lisbon?")

    await answer_inbox_event(services, event_id)

    assert await sandbox_notes(sandbox[0]) == []
    assert await chat_requests(fake_llm_url) == []
    async with transaction(services.sessions) as session:
        call = (await session.scalars(select(LlmCall))).one()
        conversation = (await session.scalars(select(Conversation))).one()
        event = await session.get(InboxEvent, event_id)
        tasks = (await session.scalars(select(CrmTask))).all()
    assert (call.status, call.agent_id) == ("budget_blocked", connected.agent_id)
    assert conversation.handed_off_at is not None
    assert event is not None
    assert event.status == "handled"
    assert [task.entity_id for task in tasks] == [DEMO_LEAD_ID]  # a manager is asked to answer
