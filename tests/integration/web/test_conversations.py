"""The conversations and logs pages over plain HTTP, on rows written to the database."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select

from agent_platform.activity.models import ActivityLog
from agent_platform.agent.models import Agent
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmCall, CrmConnection, CrmTask
from agent_platform.db.session import transaction
from agent_platform.organization.models import Role
from agent_platform.services import Services
from tests.support.people import Person, create_person
from tests.support.web_client import form_token, signed_in

LEAD_ID = 4242


@dataclass(frozen=True)
class SeededConversations:
    person: Person
    connection_id: uuid.UUID
    with_messages: uuid.UUID
    """An answering Kommo conversation with lead LEAD_ID: customer, agent (+ tool call), tool."""
    handed_off: uuid.UUID
    stopped: uuid.UUID
    chat: uuid.UUID


async def seed_conversations(services: Services, *, role: Role = Role.ADMIN) -> SeededConversations:
    """A person's organization with an agent, a Kommo connection and conversations in each
    state; the first has messages with a tool call, tokens and cost."""
    person = await create_person(services, role=role)
    organization_id = person.organization_id
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        agent = Agent(organization_id=organization_id, name="Sales Bot", model="test/model")
        session.add(agent)
        await session.flush()
        connection = CrmConnection(
            organization_id=organization_id,
            subdomain="acme",
            base_url="https://acme.kommo.com",
            webhook_token=secrets.token_hex(16),
            agent_id=agent.id,
        )
        session.add(connection)
        await session.flush()

        def kommo(lead_id: int, **state: object) -> Conversation:
            return Conversation(
                organization_id=organization_id,
                connection_id=connection.id,
                channel="kommo",
                agent_id=agent.id,
                entity_type="leads",
                entity_id=lead_id,
                last_message_at=now,
                **state,
            )

        with_messages = kommo(LEAD_ID)
        handed_off = kommo(
            5001, handed_off_at=now, handoff_reason="the customer asked for a person"
        )
        stopped = kommo(5002, stopped_at=now, stop_reason="stop word: unsubscribe")
        chat = Conversation(
            organization_id=organization_id,
            channel="api",
            agent_id=agent.id,
            entity_type="chat",
            entity_id=0,
        )
        session.add_all([with_messages, handed_off, stopped, chat])
        await session.flush()
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "move_lead_to_stage", "arguments": '{"stage": "Qualified"}'},
        }
        session.add_all(
            [
                Message(
                    organization_id=organization_id,
                    conversation_id=with_messages.id,
                    role="user",
                    content="Hello <script>alert('lead')</script>, how much is it?",
                    created_at=now - timedelta(minutes=3),
                ),
                Message(
                    organization_id=organization_id,
                    conversation_id=with_messages.id,
                    role="assistant",
                    content="",
                    tool_calls=[call],
                    model="test/model",
                    tokens_in=120,
                    tokens_out=15,
                    cost_usd=Decimal("0.000300"),
                    created_at=now - timedelta(minutes=2),
                ),
                Message(
                    organization_id=organization_id,
                    conversation_id=with_messages.id,
                    role="tool",
                    content='{"moved": true}',
                    tool_call_id="call_1",
                    created_at=now - timedelta(minutes=2),
                ),
                Message(
                    organization_id=organization_id,
                    conversation_id=with_messages.id,
                    role="assistant",
                    content="It costs 100 dollars.",
                    model="test/model",
                    tokens_in=200,
                    tokens_out=30,
                    cost_usd=Decimal("0.000450"),
                    created_at=now - timedelta(minutes=1),
                ),
            ]
        )
    return SeededConversations(
        person, connection.id, with_messages.id, handed_off.id, stopped.id, chat.id
    )


def conversation_links(page: httpx.Response) -> list[str]:
    return re.findall(r'href="/app/conversations/([0-9a-f-]{36})"', page.text)


async def test_the_list_filters_by_state_channel_and_lead(api_url: str, services: Services) -> None:
    seeded = await seed_conversations(services)
    async with signed_in(api_url, seeded.person) as client:
        everything = await client.get("/app/conversations")
        handed_off = await client.get("/app/conversations", params={"state": "handed_off"})
        stopped = await client.get("/app/conversations", params={"state": "stopped"})
        answering = await client.get("/app/conversations", params={"state": "answering"})
        chats = await client.get("/app/conversations", params={"channel": "api"})
        by_lead = await client.get("/app/conversations", params={"lead": str(LEAD_ID)})
        bad_lead = await client.get("/app/conversations", params={"lead": "12abc"})
        bad_state = await client.get("/app/conversations", params={"state": "asleep"})

    assert everything.status_code == 200
    assert set(conversation_links(everything)) == {
        str(seeded.with_messages),
        str(seeded.handed_off),
        str(seeded.stopped),
        str(seeded.chat),
    }
    assert "Sales Bot" in everything.text
    assert f"Lead #{LEAD_ID}" in everything.text
    assert conversation_links(handed_off) == [str(seeded.handed_off)]
    assert conversation_links(stopped) == [str(seeded.stopped)]
    assert set(conversation_links(answering)) == {str(seeded.with_messages), str(seeded.chat)}
    assert conversation_links(chats) == [str(seeded.chat)]
    assert conversation_links(by_lead) == [str(seeded.with_messages)]
    assert bad_lead.status_code == 400
    assert "A lead ID is a positive whole number." in bad_lead.text
    assert bad_state.status_code == 400


async def test_the_list_pages_by_cursor_keeping_its_filters(
    api_url: str, services: Services
) -> None:
    seeded = await seed_conversations(services)
    async with transaction(services.sessions) as session:
        session.add_all(
            Conversation(
                organization_id=seeded.person.organization_id,
                connection_id=seeded.connection_id,
                channel="kommo",
                entity_type="leads",
                entity_id=9000 + number,
            )
            for number in range(30)
        )
    seen: list[str] = []
    async with signed_in(api_url, seeded.person) as client:
        page = await client.get("/app/conversations", params={"channel": "kommo"})
        pages = 1
        while True:
            seen += conversation_links(page)
            found = re.search(r'href="([^"]+)" rel="next"', page.text)
            if found is None:
                break
            next_url = found.group(1).replace("&amp;", "&")
            assert "channel=kommo" in next_url
            page = await client.get(next_url)
            pages += 1
        forged = await client.get("/app/conversations", params={"cursor": "not-a-cursor"})

    assert pages == 2
    assert len(seen) == len(set(seen)) == 33, "every Kommo conversation once, the chat none"
    assert str(seeded.chat) not in seen
    assert forged.status_code == 400
    assert "start again from the first page" in forged.text


async def test_a_conversation_shows_its_messages_tool_calls_and_cost(
    api_url: str, services: Services
) -> None:
    seeded = await seed_conversations(services)
    async with signed_in(api_url, seeded.person) as client:
        page = await client.get(f"/app/conversations/{seeded.with_messages}")

    assert page.status_code == 200
    text = page.text
    roles = re.findall(r'data-testid="message-role">([^<]+)<', text)
    assert roles == ["Customer", "Agent", "Tool", "Agent"], "a tool's result after its call"
    assert "move_lead_to_stage" in text
    assert "&#34;stage&#34;: &#34;Qualified&#34;" in text
    assert "Result of tool call call_1" in text
    assert "120 tokens in, 15 out · $0.000300" in text
    assert "4 messages · 320 tokens in, 45 out · $0.000750" in text
    assert "It costs 100 dollars." in text
    assert 'data-testid="conversation-state">Answering<' in text


async def test_a_message_with_markup_is_shown_as_text(api_url: str, services: Services) -> None:
    seeded = await seed_conversations(services)
    async with signed_in(api_url, seeded.person) as client:
        page = await client.get(f"/app/conversations/{seeded.with_messages}")

    assert "Hello &lt;script&gt;alert(&#39;lead&#39;)&lt;/script&gt;, how much is it?" in page.text
    assert "<script>alert" not in page.text


async def test_taking_over_then_resuming_changes_the_state(
    api_url: str, services: Services
) -> None:
    seeded = await seed_conversations(services, role=Role.MEMBER)
    path = f"/app/conversations/{seeded.with_messages}"
    async with signed_in(api_url, seeded.person) as client:
        token = form_token(await client.get(path))
        taken = await client.post(f"{path}/take-over", data={"csrf_token": token})
        after_take_over = await client.get(path)
        paused_list = await client.get("/app/conversations", params={"state": "paused"})
        async with transaction(services.sessions) as session:
            paused = await session.get(Conversation, seeded.with_messages)
            assert paused is not None
            assert paused.handed_off_at is not None
            assert paused.handoff_reason == "taken over in the dashboard"
        resumed = await client.post(f"{path}/resume", data={"csrf_token": token})
        after_resume = await client.get(path)

    assert taken.status_code == resumed.status_code == 303
    assert taken.headers["location"] == path
    assert 'data-testid="conversation-state">Paused<' in after_take_over.text
    assert "Resume the agent" in after_take_over.text
    assert conversation_links(paused_list) == [str(seeded.with_messages)]
    assert 'data-testid="conversation-state">Answering<' in after_resume.text
    async with transaction(services.sessions) as session:
        conversation = await session.get(Conversation, seeded.with_messages)
        assert conversation is not None
        assert conversation.handed_off_at is None
        assert conversation.handoff_reason is None
        logged = await session.scalars(
            select(ActivityLog.action)
            .where(ActivityLog.entity_id == str(seeded.with_messages))
            .order_by(ActivityLog.created_at)
        )
        assert list(logged) == ["conversation.paused", "conversation.resumed"]


async def test_resuming_ends_a_handoff_and_a_stop(api_url: str, services: Services) -> None:
    seeded = await seed_conversations(services)
    async with signed_in(api_url, seeded.person) as client:
        token = form_token(await client.get("/app/conversations"))
        for conversation_id in (seeded.handed_off, seeded.stopped):
            await client.post(
                f"/app/conversations/{conversation_id}/resume", data={"csrf_token": token}
            )
        answering = await client.get("/app/conversations", params={"state": "answering"})

    assert set(conversation_links(answering)) == {
        str(seeded.with_messages),
        str(seeded.handed_off),
        str(seeded.stopped),
        str(seeded.chat),
    }


async def test_another_organization_s_conversation_is_not_found(
    api_url: str, services: Services
) -> None:
    theirs = await seed_conversations(services)
    mine = await seed_conversations(services)
    path = f"/app/conversations/{theirs.with_messages}"
    async with signed_in(api_url, mine.person) as client:
        token = form_token(await client.get("/app/conversations"))
        page = await client.get(path)
        taken = await client.post(f"{path}/take-over", data={"csrf_token": token})
        not_an_id = await client.get("/app/conversations/not-an-id")

    assert page.status_code == taken.status_code == not_an_id.status_code == 404
    assert "Hello" not in page.text
    async with transaction(services.sessions) as session:
        untouched = await session.get(Conversation, theirs.with_messages)
        assert untouched is not None
        assert untouched.handed_off_at is None


async def test_a_viewer_reads_but_cannot_take_over(api_url: str, services: Services) -> None:
    seeded = await seed_conversations(services, role=Role.VIEWER)
    path = f"/app/conversations/{seeded.with_messages}"
    async with signed_in(api_url, seeded.person) as client:
        page = await client.get(path)
        token = form_token(page)
        taken = await client.post(f"{path}/take-over", data={"csrf_token": token})
        resumed = await client.post(f"{path}/resume", data={"csrf_token": token})

    assert page.status_code == 200
    assert "Take over" not in page.text
    assert taken.status_code == resumed.status_code == 403
    async with transaction(services.sessions) as session:
        untouched = await session.get(Conversation, seeded.with_messages)
        assert untouched is not None
        assert untouched.handed_off_at is None


async def test_logs_show_activity_tasks_and_calls_with_filters(
    api_url: str, services: Services
) -> None:
    seeded = await seed_conversations(services)
    organization_id = seeded.person.organization_id
    async with transaction(services.sessions) as session:
        session.add_all(
            [
                ActivityLog(
                    organization_id=organization_id,
                    actor_type="agent",
                    action="lead.stage_changed",
                    entity_type="lead",
                    entity_id=str(LEAD_ID),
                    details={"stage": "<b>Qualified</b>"},
                ),
                ActivityLog(
                    organization_id=organization_id,
                    actor_type="api_key",
                    action="agent.published",
                    entity_type="agent",
                    entity_id="a1",
                ),
                CrmTask(
                    organization_id=organization_id,
                    connection_id=seeded.connection_id,
                    entity_type="leads",
                    entity_id=LEAD_ID,
                    text="Call the customer back",
                    complete_till=datetime.now(UTC) + timedelta(days=1),
                ),
                CrmTask(
                    organization_id=organization_id,
                    connection_id=seeded.connection_id,
                    entity_type="leads",
                    entity_id=777,
                    text="Send the contract",
                    status="completed",
                ),
                CrmCall(
                    organization_id=organization_id,
                    connection_id=seeded.connection_id,
                    lead_id=LEAD_ID,
                    uniq="call-1",
                    direction="inbound",
                    duration_seconds=95,
                    source="telephony",
                    phone="+15550100",
                ),
                CrmCall(
                    organization_id=organization_id,
                    connection_id=seeded.connection_id,
                    lead_id=777,
                    uniq="call-2",
                    direction="outbound",
                    source="telephony",
                    phone="+15550199",
                ),
            ]
        )
    async with signed_in(api_url, seeded.person) as client:
        activity = await client.get("/app/logs")
        published = await client.get("/app/logs", params={"action": "agent.published"})
        open_tasks = await client.get("/app/logs", params={"tab": "tasks", "status": "open"})
        lead_tasks = await client.get("/app/logs", params={"tab": "tasks", "lead": "777"})
        inbound = await client.get("/app/logs", params={"tab": "calls", "direction": "inbound"})
        bad = await client.get("/app/logs", params={"tab": "calls", "direction": "sideways"})

    assert activity.status_code == 200
    assert "lead.stage_changed" in activity.text
    assert "agent.published" in activity.text
    assert "&lt;b&gt;Qualified&lt;/b&gt;" in activity.text
    assert "agent.published" in published.text
    assert "lead.stage_changed" not in published.text
    assert "Call the customer back" in open_tasks.text
    # The filter chosen stays chosen in its select.
    assert '<option value="open" selected>' in open_tasks.text
    assert '<option value="inbound" selected>' in inbound.text
    assert "Send the contract" not in open_tasks.text
    assert "Send the contract" in lead_tasks.text
    assert "Call the customer back" not in lead_tasks.text
    assert "+15550100" in inbound.text
    assert "+15550199" not in inbound.text
    assert bad.status_code == 400
    assert "Choose the call direction from the list." in bad.text


async def test_logs_are_the_organization_s_own(api_url: str, services: Services) -> None:
    theirs = await seed_conversations(services)
    mine = await seed_conversations(services)
    async with transaction(services.sessions) as session:
        session.add(
            ActivityLog(
                organization_id=theirs.person.organization_id,
                actor_type="agent",
                action="their.secret_action",
            )
        )
    async with signed_in(api_url, mine.person) as client:
        activity = await client.get("/app/logs")

    assert activity.status_code == 200
    assert "their.secret_action" not in activity.text
