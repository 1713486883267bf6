"""The agent's tools against the Kommo sandbox over real HTTP: the CRM port reads the lead
and changes it (task, stage, field, tag, responsible user); tool calls run once even when a
job's retry runs them again; a tool the agent may not use, an unknown one or bad arguments
become results for the model, never a crash; a turn that stopped among its tool calls
resumes with those that have no result yet."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent_platform.agent.schemas import AgentSettings
from agent_platform.agent.tool_calls import ToolScope, run_tool_calls
from agent_platform.agent.turn import EMPTY_REPLY_REASON, TurnRequest, generate
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.kommo.port import KommoPort
from agent_platform.crm.models import CrmTask
from agent_platform.crm.sandbox.store import (
    DEMO_LEAD_ID,
    LEAD_BUDGET_FIELD_ID,
    LEAD_QUALIFIED_FIELD_ID,
    LEAD_SOURCE_FIELD_ID,
    LEAD_SOURCE_REFERRAL_ENUM_ID,
    MANAGER_USER_ID,
)
from agent_platform.db.session import transaction
from agent_platform.llm.tools import ToolCall
from agent_platform.services import Services
from tests.support.crm_records import kommo_tasks
from tests.support.factories import ConnectedAgent
from tests.support.jobs import run_queued_jobs

EVERY_TOOL = frozenset(
    {"create_task", "move_stage", "set_custom_field", "add_tag", "handoff", "schedule_follow_up"}
)
OFFER_MADE_STATUS_ID = 7_000_013


@pytest.fixture
async def kommo(sandbox: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    url, token = sandbox
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


@pytest.fixture
async def conversation_id(services: Services, connected: ConnectedAgent) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        conversation = Conversation(
            organization_id=connected.organization_id,
            connection_id=connected.connection_id,
            agent_id=connected.agent_id,
            entity_type="leads",
            entity_id=DEMO_LEAD_ID,
        )
        session.add(conversation)
        await session.flush()
        return conversation.id


def scope_of(
    services: Services,
    connected: ConnectedAgent,
    conversation_id: uuid.UUID,
    allowed: frozenset[str],
) -> ToolScope:
    return ToolScope(
        organization_id=connected.organization_id,
        conversation_id=conversation_id,
        allowed=allowed,
        crm=KommoPort(services, connected.organization_id, connected.connection_id),
        lead_id=DEMO_LEAD_ID,
    )


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call-{uuid.uuid4().hex[:8]}", name=name, arguments=arguments)


async def lead(kommo: httpx.AsyncClient) -> dict[str, Any]:
    response = await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def field_values(lead_body: dict[str, Any], field_id: int) -> list[dict[str, Any]]:
    fields = lead_body.get("custom_fields_values") or []
    return next((f["values"] for f in fields if f["field_id"] == field_id), [])


async def count(services: Services, model: type[Any]) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_the_port_reads_the_lead_with_its_stage_and_pipeline_names(
    services: Services, connected: ConnectedAgent
) -> None:
    port = KommoPort(services, connected.organization_id, connected.connection_id)

    context = await port.lead_context(DEMO_LEAD_ID, field_ids=[LEAD_BUDGET_FIELD_ID])

    assert context.id == DEMO_LEAD_ID
    assert context.pipeline == "Sales"
    assert context.stage
    assert set(context.as_data()) == {"id", "name", "pipeline", "stage", "price", "tags", "fields"}


async def test_tool_calls_change_the_lead_in_kommo_once_even_when_run_again(
    services: Services,
    connected: ConnectedAgent,
    conversation_id: uuid.UUID,
    kommo: httpx.AsyncClient,
) -> None:
    scope = scope_of(services, connected, conversation_id, EVERY_TOOL)
    calls = [
        call("create_task", text="Call the customer back", due_in_hours=4),
        call("move_stage", status_id=OFFER_MADE_STATUS_ID),
        call("set_custom_field", field_id=LEAD_SOURCE_FIELD_ID, value="referral"),
        call("set_custom_field", field_id=LEAD_BUDGET_FIELD_ID, value="1500"),
        call("set_custom_field", field_id=LEAD_QUALIFIED_FIELD_ID, value="yes"),
        call("add_tag", tag="hot"),
    ]

    outcomes = await run_tool_calls(services, scope, calls)
    # A job retried after a crash runs the same calls again.
    again = await run_tool_calls(services, scope, calls)
    await run_queued_jobs(services)

    assert [o.result for o in outcomes] == [{"ok": True}] * len(calls)
    assert [o.result for o in again] == [o.result for o in outcomes]
    changed = await lead(kommo)
    assert changed["status_id"] == OFFER_MADE_STATUS_ID
    assert field_values(changed, LEAD_SOURCE_FIELD_ID)[0]["enum_id"] == LEAD_SOURCE_REFERRAL_ENUM_ID
    assert field_values(changed, LEAD_BUDGET_FIELD_ID)[0]["value"] in (1500, "1500")
    assert field_values(changed, LEAD_QUALIFIED_FIELD_ID)[0]["value"] is True
    assert "hot" in [tag["name"] for tag in changed["_embedded"]["tags"]]
    assert await count(services, CrmTask) == 1
    assert [t["text"] for t in await kommo_tasks(kommo)].count("Call the customer back") == 1
    async with transaction(services.sessions) as session:
        recorded = await session.scalars(select(Message.tool_call_id).where(Message.role == "tool"))
        assert sorted(recorded) == sorted(c.id for c in calls)


async def test_adding_a_tag_keeps_the_lead_s_other_tags_and_assigning_sets_the_user(
    services: Services, connected: ConnectedAgent, kommo: httpx.AsyncClient
) -> None:
    port = KommoPort(services, connected.organization_id, connected.connection_id)

    await port.add_tag(DEMO_LEAD_ID, "first")
    await port.add_tag(DEMO_LEAD_ID, "second")
    await port.add_tag(DEMO_LEAD_ID, "SECOND")
    await port.assign(DEMO_LEAD_ID, MANAGER_USER_ID)

    changed = await lead(kommo)
    names = [tag["name"] for tag in changed["_embedded"]["tags"]]
    assert names.count("first") == 1
    assert names.count("second") == 1
    assert "SECOND" not in names
    assert changed["responsible_user_id"] == MANAGER_USER_ID


async def test_refused_calls_become_results_for_the_model_and_change_nothing(
    services: Services,
    connected: ConnectedAgent,
    conversation_id: uuid.UUID,
    kommo: httpx.AsyncClient,
) -> None:
    scope = scope_of(
        services, connected, conversation_id, frozenset({"add_tag", "set_custom_field"})
    )
    before = await lead(kommo)
    calls = [
        call("move_stage", status_id=OFFER_MADE_STATUS_ID),
        call("delete_lead"),
        call("add_tag", tag=""),
        call("add_tag", tag="ok", colour="red"),
        call("set_custom_field", field_id="budget", value="1"),
        call("set_custom_field", field_id=LEAD_SOURCE_FIELD_ID, value="carrier pigeon"),
        call("set_custom_field", field_id=LEAD_BUDGET_FIELD_ID, value="a lot"),
        call("set_custom_field", field_id=999_999, value="1"),
    ]

    outcomes = await run_tool_calls(services, scope, calls)

    errors = [o.result.get("error", "") for o in outcomes]
    assert all(o.result["ok"] is False for o in outcomes)
    assert "not available" in errors[0]
    assert "not available" in errors[1]
    assert "'tag' must be at least 1 characters" in errors[2]
    assert "'colour' is not an argument" in errors[3]
    assert "'field_id' must be an integer" in errors[4]
    assert "Website, Referral, Ads" in errors[5]
    assert "takes a number" in errors[6]
    assert "does not know" in errors[7]
    after = await lead(kommo)
    assert (after["status_id"], after.get("custom_fields_values"), after["_embedded"]["tags"]) == (
        before["status_id"],
        before.get("custom_fields_values"),
        before["_embedded"]["tags"],
    )


async def test_a_turn_resumes_with_the_tool_calls_an_earlier_attempt_left_without_result(
    services: Services,
    connected: ConnectedAgent,
    conversation_id: uuid.UUID,
    kommo: httpx.AsyncClient,
    fake_llm_url: str,
) -> None:
    tagged = {
        "id": "call-done",
        "type": "function",
        "function": {"name": "add_tag", "arguments": '{"tag": "done-before"}'},
    }
    pending = {
        "id": "call-pending",
        "type": "function",
        "function": {"name": "add_tag", "arguments": '{"tag": "resumed"}'},
    }
    for message in (
        Message(role="user", content="I want the offer"),
        Message(role="assistant", content="", tool_calls=[tagged, pending]),
        Message(role="tool", content=json.dumps({"ok": True}), tool_call_id="call-done"),
    ):
        message.organization_id = connected.organization_id
        message.conversation_id = conversation_id
        # A transaction each, as the turn records them: each message its own moment.
        async with transaction(services.sessions) as session:
            session.add(message)
    settings = AgentSettings(name="Seller", model="test/model", tools=["add_tag"])

    result = await generate(
        services,
        TurnRequest(
            organization_id=connected.organization_id,
            conversation_id=conversation_id,
            agent_id=connected.agent_id,
            agent=settings,
            version_id=None,
            question="I want the offer",
            crm=KommoPort(services, connected.organization_id, connected.connection_id),
            lead_id=DEMO_LEAD_ID,
        ),
    )

    assert result.text == "Our prices start at 100 USD."
    assert [o.call.id for o in result.tool_calls] == ["call-pending"]
    names = [tag["name"] for tag in (await lead(kommo))["_embedded"]["tags"]]
    assert "resumed" in names
    assert "done-before" not in names
    async with httpx.AsyncClient() as client:
        asked = [r["body"] for r in (await client.get(f"{fake_llm_url}/_fake/requests")).json()]
    tool_turns = [m for m in asked[-1]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_turns] == ["call-done", "call-pending"]
    lead_data = next(m["content"] for m in asked[-1]["messages"] if "<data>" in m["content"])
    assert '"pipeline": "Sales"' in lead_data


async def test_a_model_that_keeps_calling_tools_is_stopped_after_three_rounds(
    services: Services,
    connected: ConnectedAgent,
    conversation_id: uuid.UUID,
    kommo: httpx.AsyncClient,
    fake_llm_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=fake_llm_url) as fake:
        await fake.post(
            "/_fake/config",
            json={"tool_calls": [{"name": "add_tag", "arguments": '{"tag": "loop"}'}]},
        )
        async with transaction(services.sessions) as session:
            session.add(
                Message(
                    organization_id=connected.organization_id,
                    conversation_id=conversation_id,
                    role="user",
                    content="Tag me",
                )
            )

        result = await generate(
            services,
            TurnRequest(
                organization_id=connected.organization_id,
                conversation_id=conversation_id,
                agent_id=connected.agent_id,
                agent=AgentSettings(name="Seller", model="test/model", tools=["add_tag"]),
                version_id=None,
                question="Tag me",
                crm=KommoPort(services, connected.organization_id, connected.connection_id),
                lead_id=DEMO_LEAD_ID,
            ),
        )
        asked = [r["body"] for r in (await fake.get("/_fake/requests")).json()]

    assert [bool(request.get("tools")) for request in asked] == [True, True, True, False]
    assert len(result.tool_calls) == 3
    # The last answer was tool calls again, with no words for the customer: a person takes over.
    assert (result.text, result.handoff_reason) == (None, EMPTY_REPLY_REASON)
    assert result.usage.tokens_in is not None
    names = [tag["name"] for tag in (await lead(kommo))["_embedded"]["tags"]]
    assert names.count("loop") == 1
