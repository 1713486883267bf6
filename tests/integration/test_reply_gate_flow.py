"""The agent's behaviour settings in the live reply flow (agent.service and the reply gate).

As in test_sandbox_lead_page.py: the Kommo sandbox sends its webhooks to the real api, a
real worker loop answers with the fake LLM, and replies come back to the sandbox as notes.
The agent is created and published through the API with the settings under test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from agent_platform.activity.models import ActivityLog
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import InboxEvent
from agent_platform.crm.sandbox.store import (
    DEMO_LEAD_ID,
    INITIAL_CONTACT_STATUS_ID,
    LEAD_COMMENT_FIELD_ID,
    PARTNERS_PIPELINE_ID,
    PIPELINE_ID,
)
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.agents import answer_with, api_key_of, assert_error, created, published
from tests.support.clients import sandbox_sending_webhooks
from tests.support.factories import ConnectedAgent, create_connected_agent, message_form
from tests.support.processes import eventually_awaited
from tests.support.worker import running_worker

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers
# A schedule that is never open: every message arrives out of hours.
CLOSED = {"timezone": "Europe/Berlin", "weekly": {}}


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


@pytest.fixture
async def kommo(
    sandbox: tuple[str, str], api_url: str, connected: ConnectedAgent
) -> AsyncIterator[httpx.AsyncClient]:
    """The sandbox, with the connection's webhook subscribed to chat messages."""
    destination = f"{api_url}/webhooks/kommo/{connected.webhook_token}"
    settings = ["add_message", "add_outgoing_message"]
    async with sandbox_sending_webhooks(sandbox, destination, settings) as kommo:
        yield kommo


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        yield client


@pytest.fixture
async def headers(services: Services, connected: ConnectedAgent) -> dict[str, str]:
    return await api_key_of(services, connected.organization_id)


async def use_agent(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    **settings: Any,
) -> None:
    agent = await created(api, headers, name="Sales", **settings)
    await published(api, headers, agent["id"], 1)
    await answer_with(services, connected.connection_id, agent["id"])


async def customer_writes(kommo: httpx.AsyncClient, text: str) -> None:
    response = await kommo.post(
        f"/sandbox/leads/{DEMO_LEAD_ID}/messages", data={"text": text, "author": "customer"}
    )
    assert response.status_code == 303, response.text


async def manager_writes(kommo: httpx.AsyncClient, text: str) -> None:
    response = await kommo.post(
        f"/sandbox/leads/{DEMO_LEAD_ID}/messages", data={"text": text, "author": "manager"}
    )
    assert response.status_code == 303, response.text


async def notes(kommo: httpx.AsyncClient) -> list[str]:
    found = (await kommo.get("/sandbox/notes")).json()["notes"]
    return [note["params"]["text"] for note in found]


async def settled_inbox(services: Services, count: int) -> list[tuple[str, str, str | None]]:
    """(text, status, reason) of the customer's messages, once `count` are all settled."""

    async def probe() -> list[tuple[str, str, str | None]] | None:
        async with transaction(services.sessions) as session:
            rows = (
                await session.execute(
                    select(InboxEvent.payload, InboxEvent.status, InboxEvent.error).order_by(
                        InboxEvent.received_at
                    )
                )
            ).all()
        customer = [
            (row.payload["message"]["text"], row.status, row.error)
            for row in rows
            if row.payload.get("message", {}).get("direction") == "incoming"
        ]
        settled = [entry for entry in customer if entry[1] != "pending"]
        return customer if len(customer) == count and len(settled) == count else None

    return await eventually_awaited(probe, f"{count} customer messages settled")


async def conversation(services: Services) -> Conversation:
    async with transaction(services.sessions) as session:
        found = await session.scalar(select(Conversation))
    assert found is not None
    return found


async def messages(services: Services) -> list[tuple[str, str]]:
    async with transaction(services.sessions) as session:
        rows = (
            await session.execute(
                select(Message.role, Message.content).order_by(Message.created_at)
            )
        ).all()
    return [(row.role, row.content) for row in rows]


async def replied(kommo: httpx.AsyncClient, count: int) -> list[str]:
    async def probe() -> list[str] | None:
        found = await notes(kommo)
        return found if len(found) >= count else None

    return await eventually_awaited(probe, f"{count} replies in Kommo")


async def test_three_quick_messages_get_one_reply_answering_all_of_them(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    fake_llm_url: str,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, debounce_seconds=2)

    for text in ("Hi", "I need a sofa", "How much is it?"):
        await customer_writes(kommo, text)

    inbox = await settled_inbox(services, 3)
    assert [status for _, status, _ in inbox] == ["handled"] * 3
    assert await notes(kommo) == [LLM_REPLY]
    # The sandbox sends its webhooks side by side: they may arrive in any order.
    *asked, answered = await messages(services)
    assert sorted(asked) == [("user", "Hi"), ("user", "How much is it?"), ("user", "I need a sofa")]
    assert answered == ("assistant", LLM_REPLY)
    async with httpx.AsyncClient() as client:
        [request] = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    in_prompt = [m["content"] for m in request["body"]["messages"] if m["role"] == "user"]
    assert sorted(in_prompt[-3:]) == ["Hi", "How much is it?", "I need a sofa"]


async def test_a_manager_pauses_the_agent_until_resumed(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, takeover_pause_minutes=60)
    await customer_writes(kommo, "Hello")
    await replied(kommo, 1)

    await manager_writes(kommo, "Hi, Bob here, I'll help you.")
    await eventually_awaited(
        lambda: _manager_recorded(services), "the manager's message in the conversation"
    )
    await customer_writes(kommo, "Thanks Bob")
    inbox = await settled_inbox(services, 2)
    assert inbox[1] == ("Thanks Bob", "ignored", "manager_took_over")

    conversation_id = (await conversation(services)).id
    resumed = await api.post(f"/api/v1/conversations/{conversation_id}/resume", headers=headers)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["last_manager_message_at"] is None
    await customer_writes(kommo, "Bob left?")

    assert await replied(kommo, 2) == [LLM_REPLY, LLM_REPLY]
    assert ("manager", "Hi, Bob here, I'll help you.") in await messages(services)


async def _manager_recorded(services: Services) -> bool | None:
    async with transaction(services.sessions) as session:
        written_at = await session.scalar(select(Conversation.last_manager_message_at))
    return written_at is not None or None


async def test_the_pause_ends_by_itself_once_the_manager_is_quiet_long_enough(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, takeover_pause_minutes=30)
    await manager_writes(kommo, "Hello from the team")
    await eventually_awaited(lambda: _manager_recorded(services), "the manager's message recorded")
    # The manager wrote an hour ago: the 30-minute pause is over.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Conversation).values(
                last_manager_message_at=datetime.now(UTC) - timedelta(hours=1)
            )
        )

    await customer_writes(kommo, "Is anyone there?")

    assert await replied(kommo, 1) == [LLM_REPLY]


async def test_a_stop_word_stops_the_agent_for_the_lead(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, stop_words=["unsubscribe"])

    await customer_writes(kommo, "Please UNSUBSCRIBE me")
    await settled_inbox(services, 1)
    await customer_writes(kommo, "Hello?")

    assert await settled_inbox(services, 2) == [
        ("Please UNSUBSCRIBE me", "ignored", "stop_word"),
        ("Hello?", "ignored", "lead_stopped"),
    ]
    stopped = await conversation(services)
    assert stopped.stopped_at is not None
    assert stopped.stop_reason == "stop word: unsubscribe"
    assert await notes(kommo) == []


async def test_out_of_hours_the_message_is_sent_once_for_several_messages(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    hours = CLOSED | {
        "outside_hours": "out_of_hours_message",
        "out_of_hours_message": "We open at 9.",
    }
    await use_agent(services, api, headers, connected, working_hours=hours)

    await customer_writes(kommo, "Hello?")
    await settled_inbox(services, 1)
    await customer_writes(kommo, "Anyone?")

    assert await settled_inbox(services, 2) == [
        ("Hello?", "handled", None),
        ("Anyone?", "ignored", "out_of_hours_message_already_sent"),
    ]
    assert await notes(kommo) == ["We open at 9."]
    assert (await conversation(services)).out_of_hours_message_sent_at is not None


async def test_out_of_hours_the_silent_agent_says_nothing(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(
        services, api, headers, connected, working_hours=CLOSED | {"outside_hours": "silent"}
    )

    await customer_writes(kommo, "Hello?")

    assert await settled_inbox(services, 1) == [("Hello?", "ignored", "outside_working_hours")]
    assert await notes(kommo) == []


async def test_out_of_hours_the_answer_waits_for_the_next_opening(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    # Open only next week: the answer must be scheduled, not sent.
    next_week = (datetime.now(UTC) + timedelta(days=3)).date()
    hours = {
        "timezone": "UTC",
        "weekly": {next_week.strftime("%a").lower(): [["00:00", "23:59"]]},
        "outside_hours": "answer_later",
    }
    await use_agent(services, api, headers, connected, working_hours=hours)

    await customer_writes(kommo, "Hello?")

    scheduled_at = await eventually_awaited(
        lambda: _scheduled_answer(services), "the answer scheduled"
    )
    assert scheduled_at.date() == next_week
    assert await notes(kommo) == []
    async with transaction(services.sessions) as session:
        assert await session.scalar(select(InboxEvent.status)) == "pending"


async def _scheduled_answer(services: Services) -> datetime | None:
    async with transaction(services.sessions) as session:
        connection = await session.connection()
        row = (
            await connection.exec_driver_sql(
                "SELECT scheduled_at FROM procrastinate_jobs "
                "WHERE task_name = 'answer_incoming_message' AND scheduled_at IS NOT NULL"
            )
        ).first()
    return None if row is None else row[0]


async def test_a_handoff_keyword_hands_over_to_a_person(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    manager = await _a_manager(kommo)
    handoff = {"keywords": ["operator"], "responsible_user_id": manager, "task_text": "Call back"}
    await use_agent(services, api, headers, connected, handoff=handoff)

    await customer_writes(kommo, "I want an operator")
    lead = await eventually_awaited(
        lambda: _lead_of(kommo, manager), "the manager made responsible"
    )
    task = await eventually_awaited(lambda: _task_on_lead(kommo), "the manager's task in Kommo")
    await customer_writes(kommo, "Hello?")

    assert await settled_inbox(services, 2) == [
        ("I want an operator", "handled", "keyword: operator"),
        ("Hello?", "ignored", "handed_off"),
    ]
    assert lead["responsible_user_id"] == manager
    assert (task["text"], task["responsible_user_id"]) == ("Call back", manager)
    assert await notes(kommo) == []
    handed = await conversation(services)
    assert handed.handed_off_at is not None
    assert handed.handoff_reason == "keyword: operator"
    async with transaction(services.sessions) as session:
        actions = list(await session.scalars(select(ActivityLog.action)))
    assert "conversation.handed_off" in actions


async def _a_manager(kommo: httpx.AsyncClient) -> int:
    users = (await kommo.get("/api/v4/users")).json()["_embedded"]["users"]
    return int(users[-1]["id"])


async def _lead_of(kommo: httpx.AsyncClient, responsible: int) -> dict[str, Any] | None:
    response = await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")
    assert response.status_code == 200, response.text
    lead: dict[str, Any] = response.json()
    return lead if lead["responsible_user_id"] == responsible else None


async def _task_on_lead(kommo: httpx.AsyncClient) -> dict[str, Any] | None:
    response = await kommo.get(
        "/api/v4/tasks",
        params={"filter[entity_type]": "leads", "filter[entity_id][]": DEMO_LEAD_ID},
    )
    if response.status_code != 200:
        return None
    tasks: list[dict[str, Any]] = response.json()["_embedded"]["tasks"]
    return tasks[0] if tasks else None


async def test_the_daily_cap_silences_the_agent(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, max_replies_per_conversation_per_day=1)

    await customer_writes(kommo, "Hello")
    await replied(kommo, 1)
    await customer_writes(kommo, "And another thing")

    assert (await settled_inbox(services, 2))[1] == (
        "And another thing",
        "ignored",
        "daily_reply_cap",
    )
    assert await notes(kommo) == [LLM_REPLY]


async def test_the_echo_of_our_own_reply_is_not_a_manager(
    services: Services,
    api: httpx.AsyncClient,
    api_url: str,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected)
    await customer_writes(kommo, "Hello")
    await replied(kommo, 1)

    # Kommo reports the agent's reply back as an outgoing message of the chat.
    echo = message_form("echo-1", LLM_REPLY, lead_id=DEMO_LEAD_ID, direction="outgoing")
    received = await api.post(f"/webhooks/kommo/{connected.webhook_token}", data=echo)
    assert received.status_code == 200, received.text
    await eventually_awaited(lambda: _echo_settled(services), "the echo settled")
    await customer_writes(kommo, "Still there?")

    assert await replied(kommo, 2) == [LLM_REPLY, LLM_REPLY]
    assert (await conversation(services)).last_manager_message_at is None


async def _echo_settled(services: Services) -> str | None:
    async with transaction(services.sessions) as session:
        event = await session.scalar(
            select(InboxEvent).where(InboxEvent.dedupe_key == "message:echo-1")
        )
    if event is None or event.status == "pending":
        return None
    assert (event.status, event.error) == ("ignored", "the platform's own reply")
    return event.status


async def test_pause_and_resume_refuse_another_organizations_conversation(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
) -> None:
    other = await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Other"
    )
    other_headers = await api_key_of(services, other.organization_id)
    async with transaction(services.sessions) as session:
        theirs = Conversation(
            organization_id=other.organization_id,
            connection_id=other.connection_id,
            entity_type="leads",
            entity_id=DEMO_LEAD_ID,
        )
        session.add(theirs)
    for action in ("pause", "resume"):
        path = f"/api/v1/conversations/{theirs.id}/{action}"
        assert_error(await api.post(path, headers=headers), 404, "not_found")
        assert_error(
            await api.post(f"/api/v1/conversations/{uuid.uuid4()}/{action}", headers=other_headers),
            404,
            "not_found",
        )
        assert_error(await api.post(path), 401, "unauthorized")
        assert_error(
            await api.post(f"/api/v1/conversations/not-an-id/{action}", headers=headers),
            422,
            "validation_error",
        )
    paused = await api.post(f"/api/v1/conversations/{theirs.id}/pause", headers=other_headers)
    assert paused.status_code == 200, paused.text
    assert paused.json()["handoff_reason"] == "paused through the API"


async def test_the_agent_answers_only_leads_in_its_stages(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    worker: None,
) -> None:
    # The demo lead sits in the main pipeline: an agent of the partners' pipeline leaves it.
    await use_agent(
        services,
        api,
        headers,
        connected,
        active_stages=[{"pipeline_id": PARTNERS_PIPELINE_ID, "status_id": None}],
    )
    await customer_writes(kommo, "Hello")
    assert (await settled_inbox(services, 1))[0] == ("Hello", "ignored", "inactive_stage")

    await use_agent(
        services,
        api,
        headers,
        connected,
        active_stages=[{"pipeline_id": PIPELINE_ID, "status_id": INITIAL_CONTACT_STATUS_ID}],
    )
    await customer_writes(kommo, "Anyone there?")
    await replied(kommo, 1)
    assert await notes(kommo) == [LLM_REPLY]


async def test_the_model_is_shown_the_lead_fields_the_agent_chose_as_data(
    services: Services,
    api: httpx.AsyncClient,
    headers: dict[str, str],
    connected: ConnectedAgent,
    kommo: httpx.AsyncClient,
    fake_llm_url: str,
    worker: None,
) -> None:
    await use_agent(services, api, headers, connected, lead_fields=[LEAD_COMMENT_FIELD_ID])
    changed = await kommo.patch(
        f"/api/v4/leads/{DEMO_LEAD_ID}",
        json={
            "custom_fields_values": [
                {"field_id": LEAD_COMMENT_FIELD_ID, "values": [{"value": "Wants a blue sofa"}]}
            ]
        },
    )
    assert changed.status_code == 200, changed.text

    await customer_writes(kommo, "Hello")
    await replied(kommo, 1)

    async with httpx.AsyncClient() as client:
        [request] = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    instructions, data = request["body"]["messages"][:2]
    assert "Wants a blue sofa" not in instructions["content"]
    assert '"Comment": "Wants a blue sofa"' in data["content"]
