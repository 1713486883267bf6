"""From an accepted webhook to a reply note in Kommo, through a real worker loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from agent_platform.activity.models import ActivityLog
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import read_webhook
from agent_platform.crm.models import CrmDelivery, InboxEvent
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import scope_to_organization, transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.factories import (
    ConnectedAgent,
    create_connected_agent,
    message_form,
    receive_webhook,
)
from tests.support.worker import running_worker

DEADLINE_SECONDS = 30.0


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


async def notes_in(sandbox_url: str) -> list[dict[str, object]]:
    async with httpx.AsyncClient() as client:
        notes: list[dict[str, object]] = (await client.get(f"{sandbox_url}/sandbox/notes")).json()[
            "notes"
        ]
    return notes


async def wait_for(condition: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while not await condition():  # type: ignore[operator]
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def inbox_status(services: Services, dedupe_key: str) -> str | None:
    async with transaction(services.sessions) as session:
        return await session.scalar(
            select(InboxEvent.status).where(InboxEvent.dedupe_key == dedupe_key)
        )


async def test_the_agent_answers_with_a_note_and_records_the_conversation(
    services: Services,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    fake_llm_url: str,
    worker: None,
) -> None:
    await receive_webhook(
        services, connected, message_form("m-1", "How much is it?", lead_id=DEMO_LEAD_ID)
    )

    async def handled() -> bool:
        return await inbox_status(services, "message:m-1") == "handled"

    await wait_for(handled, "the inbox event to be handled")
    notes = await notes_in(sandbox[0])
    assert [(n["entity_id"], n["params"]) for n in notes] == [  # type: ignore[index]
        (DEMO_LEAD_ID, {"text": "Our prices start at 100 USD."})
    ]
    async with httpx.AsyncClient() as client:
        sent = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    prompt = sent[0]["body"]["messages"]
    assert prompt[0]["content"].startswith("Sell politely.")
    assert prompt[-1] == {"role": "user", "content": "How much is it?"}
    async with transaction(services.sessions) as session:
        conversation = (await session.scalars(select(Conversation))).one()
        messages = (await session.scalars(select(Message).order_by(Message.created_at))).all()
        delivery = (await session.scalars(select(CrmDelivery))).one()
        activity = (await session.scalars(select(ActivityLog))).one()
    assert (conversation.entity_type, conversation.entity_id) == ("leads", DEMO_LEAD_ID)
    assert [(m.role, m.content) for m in messages] == [
        ("user", "How much is it?"),
        ("assistant", "Our prices start at 100 USD."),
    ]
    assert messages[1].tokens_in
    assert messages[1].tokens_out
    assert (delivery.status, delivery.external_id) == ("sent", notes[0]["id"])
    assert (activity.action, activity.organization_id) == ("reply.sent", connected.organization_id)


async def test_a_permanent_kommo_error_fails_the_event_without_retrying(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str], worker: None
) -> None:
    await receive_webhook(services, connected, message_form("m-2", "Hi", lead_id=999_999))

    async def job_finished() -> bool:
        async with transaction(services.sessions) as session:
            status = await session.scalar(text("SELECT status FROM procrastinate_jobs"))
        return status not in ("todo", "doing")

    await wait_for(job_finished, "the job to finish")
    async with transaction(services.sessions) as session:
        job = (await session.execute(text("SELECT status, attempts FROM procrastinate_jobs"))).one()
    assert tuple(job) == ("failed", 1)
    assert await inbox_status(services, "message:m-2") == "failed"
    assert await notes_in(sandbox[0]) == []


async def test_row_level_security_hides_other_organizations_rows(
    services: Services, sandbox: tuple[str, str]
) -> None:
    acme = await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Acme"
    )
    await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Beta"
    )
    await receive_webhook(services, acme, message_form("m-3", "Hi", lead_id=DEMO_LEAD_ID))
    async with transaction(services.sessions) as session:
        await scope_to_organization(session, acme.organization_id)
        # No WHERE clause: only the policies stand between Acme and Beta.
        agents = (await session.execute(text("SELECT organization_id FROM agents"))).scalars().all()
        events = await session.scalar(select(func.count()).select_from(InboxEvent))
    assert agents == [acme.organization_id]
    assert events == 1
    async with transaction(services.sessions) as session:
        await scope_to_organization(session, uuid.uuid4())
        assert (await session.execute(text("SELECT count(*) FROM agents"))).scalar() == 0
        assert (await session.scalar(select(func.count()).select_from(Organization))) == 2


async def test_rls_refuses_writes_into_another_organization(
    services: Services, sandbox: tuple[str, str]
) -> None:
    acme = await create_connected_agent(services, kommo_url=sandbox[0], kommo_token=sandbox[1])
    beta = await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Beta"
    )

    async def insert_into_beta_as_acme() -> None:
        async with transaction(services.sessions) as session:
            await scope_to_organization(session, acme.organization_id)
            await session.execute(
                text(
                    "INSERT INTO agents (organization_id, name, model, status) "
                    "VALUES (:org, 'intruder', 'm', 'active')"
                ),
                {"org": beta.organization_id},
            )

    with pytest.raises(DBAPIError, match="row-level security"):
        await insert_into_beta_as_acme()


async def test_a_job_rolled_back_with_its_transaction_never_exists(
    services: Services, connected: ConnectedAgent
) -> None:
    with contextlib.suppress(RuntimeError):
        async with transaction(services.sessions) as session:
            await accept_webhook(
                session,
                services.queue,
                services.settings.job_queue_name,
                connection_token=connected.webhook_token,
                webhook=read_webhook(message_form("m-4", "Hi", lead_id=1).items()),
            )
            raise RuntimeError("the request failed after deferring")
    async with transaction(services.sessions) as session:
        jobs = await session.scalar(text("SELECT count(*) FROM procrastinate_jobs"))
        events = await session.scalar(select(func.count()).select_from(InboxEvent))
    assert (jobs, events) == (0, 0)
