"""Evaluation through the API over real HTTP, the fake OpenAI server scripted over HTTP: the
reply gate at each case's time (working hours, handoff keywords), the model's tool calls
recorded by the evaluation's CRM port, a draft version evaluated unpublished, refusals as
4xx, and no conversation left behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, text

from agent_platform.agent.eval_endpoints import MAX_CASES_PER_REQUEST
from agent_platform.conversation.models import Conversation, Message
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.agents import assert_error, created, patched, published
from tests.support.knowledge import create_tenant

# Monday 4 March 2025 in Moscow: 11:00 is open, 03:00 closed.
OPEN = "2025-03-03T11:00:00+03:00"
CLOSED = "2025-03-03T03:00:00+03:00"
SETTINGS: dict[str, Any] = {
    "name": "Seller",
    "instructions": "Sell kindly.",
    "working_hours": {
        "timezone": "Europe/Moscow",
        "weekly": {day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")},
        "outside_hours": "silent",
    },
    "handoff": {"keywords": ["manager"]},
    "tools": ["add_tag"],
}


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as client:
        yield client


@pytest.fixture
async def fake(fake_llm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_llm_url) as client:
        yield client


async def live_agent(api: httpx.AsyncClient, headers: dict[str, str], **changes: Any) -> str:
    agent = await created(api, headers, **(SETTINGS | changes))
    await published(api, headers, agent["id"], 1)
    return str(agent["id"])


async def run_eval(
    api: httpx.AsyncClient, headers: dict[str, str], agent_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await api.post(f"/api/v1/agents/{agent_id}/eval", json=body, headers=headers)


async def stored(services: Services, model: type[Any]) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_cases_pass_or_fail_with_the_reasons_and_leave_no_conversation_behind(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent_id = await live_agent(api, tenant.headers)
    cases = [
        {"name": "prices", "messages": ["Hi", "How much?"], "at": OPEN,
         "expect": {"reply_contains": ["100 usd"], "handoff": False, "silent": False}},
        {"name": "discount", "messages": ["Any discount?"], "at": OPEN,
         "expect": {"reply_contains": ["discount"], "reply_not_contains": ["prices"]}},
        {"name": "night", "messages": ["Are you there?"], "at": CLOSED,
         "expect": {"silent": True, "handoff": False}},
        {"name": "manager", "messages": ["Get me a manager", "Hello?"], "at": OPEN,
         "expect": {"handoff": True, "silent": True}},
    ]  # fmt: skip

    response = await run_eval(api, tenant.headers, agent_id, {"cases": cases})

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["agent_id"], report["version"]) == (agent_id, 1)
    assert (report["passed"], report["failed"]) == (3, 1)
    results = {case["name"]: case for case in report["cases"]}
    assert [name for name, case in results.items() if not case["passed"]] == ["discount"]
    assert results["discount"]["failures"] == [
        "no reply contains 'discount'",
        "a reply contains 'prices'",
    ]
    assert results["prices"]["replies"] == ["Our prices start at 100 USD."] * 2
    assert [step["outcome"] for step in results["night"]["steps"]] == ["silent"]
    assert results["night"]["steps"][0]["reason"] == "outside_working_hours"
    # Handed off on the keyword, then quiet: the handoff's pause holds for the rest.
    assert [(s["outcome"], s["reason"]) for s in results["manager"]["steps"]] == [
        ("handoff", "keyword"),
        ("silent", "handed_off"),
    ]
    assert (await stored(services, Conversation), await stored(services, Message)) == (0, 0)


async def test_tool_calls_are_recorded_by_the_port_without_touching_a_crm(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent_id = await live_agent(api, tenant.headers, model="tool/model")
    await fake.post(
        "/_fake/config",
        json={"models": {"tool/model": {"tool_calls": [
            {"name": "add_tag", "arguments": '{"tag": "hot"}'}
        ]}}},
    )  # fmt: skip
    case = {
        "name": "hot lead",
        "messages": ["I buy today"],
        "at": OPEN,
        "lead": {"id": 42, "name": "Maria", "stage": "Qualified", "fields": {"Budget": "1500"}},
        "expect": {"tool_called": ["add_tag"], "tool_not_called": ["move_stage"]},
    }

    report = (await run_eval(api, tenant.headers, agent_id, {"cases": [case]})).json()

    result = report["cases"][0]
    assert result["passed"], result
    assert result["tools_called"] == ["add_tag"] * 3
    assert result["crm_actions"] == [{"name": "add_tag", "arguments": {"tag": "hot"}}] * 3
    first_request = next(
        r["body"]
        for r in (await fake.get("/_fake/requests")).json()
        if r["path"].endswith("/completions")
    )
    # The case's lead, read through the port, is shown to the model as data.
    assert any("Maria" in str(message["content"]) for message in first_request["messages"])
    assert await stored(services, Conversation) == 0


async def test_a_follow_up_the_agent_plans_is_checked_but_never_queued(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent_id = await live_agent(
        api, tenant.headers, model="tool/model", tools=["schedule_follow_up"]
    )
    await fake.post(
        "/_fake/config",
        json={"models": {"tool/model": {"tool_calls": [
            {"name": "schedule_follow_up", "arguments": '{"delay_hours": 24, "topic": "sofa"}'}
        ]}}},
    )  # fmt: skip
    case = {
        "name": "follows up",
        "messages": ["Let me think about it"],
        "at": OPEN,
        "lead": {"id": 42, "name": "Maria"},
        "expect": {"tool_called": ["schedule_follow_up"]},
    }

    report = (await run_eval(api, tenant.headers, agent_id, {"cases": [case]})).json()

    assert report["cases"][0]["passed"], report
    async with transaction(services.sessions) as session:
        jobs = await session.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'send_follow_up'")
        )
    assert jobs == 0


async def test_a_draft_version_is_evaluated_without_being_published(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent_id = await live_agent(api, tenant.headers)
    await patched(api, tenant.headers, agent_id, instructions="DRAFT: offer a discount.")
    case = {"name": "draft", "messages": ["Hi"], "at": OPEN}

    response = await run_eval(api, tenant.headers, agent_id, {"cases": [case], "version": 2})

    assert response.json()["version"] == 2
    asked = [r["body"] for r in (await fake.get("/_fake/requests")).json()]
    assert "DRAFT: offer a discount." in asked[-1]["messages"][0]["content"]
    agent = (await api.get(f"/api/v1/agents/{agent_id}", headers=tenant.headers)).json()
    assert (agent["published_version"], agent["instructions"]) == (1, "Sell kindly.")


async def test_refusals_are_4xx_and_run_nothing(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    other = await create_tenant(services, "Other")
    agent_id = await live_agent(api, tenant.headers)
    draft_only = (await created(api, tenant.headers, name="Draft"))["id"]
    case = {"name": "c", "messages": ["Hi"]}

    foreign = await run_eval(api, other.headers, agent_id, {"cases": [case]})
    unknown = await run_eval(api, tenant.headers, str(other.agent_id), {"cases": [case]})
    no_version = await run_eval(api, tenant.headers, agent_id, {"cases": [case], "version": 9})
    unpublished = await run_eval(api, tenant.headers, draft_only, {"cases": [case]})
    misspelt = await run_eval(
        api, tenant.headers, agent_id, {"cases": [case | {"expect": {"handof": True}}]}
    )
    too_many = await run_eval(
        api, tenant.headers, agent_id, {"cases": [case] * (MAX_CASES_PER_REQUEST + 1)}
    )
    no_cases = await run_eval(api, tenant.headers, agent_id, {"cases": []})
    anonymous = await api.post(f"/api/v1/agents/{agent_id}/eval", json={"cases": [case]})

    assert_error(foreign, 404, "agent_not_found")
    assert_error(unknown, 404, "agent_not_found")
    assert_error(no_version, 404, "version_not_found")
    assert_error(unpublished, 409, "agent_not_published")
    details = assert_error(misspelt, 422, "validation_error")["error"]["details"]
    assert details[0]["path"] == "body.cases.0.expect.handof"
    assert_error(too_many, 422, "validation_error")
    assert_error(no_cases, 422, "validation_error")
    assert anonymous.status_code == 401
    asked = [
        r for r in (await fake.get("/_fake/requests")).json() if r["path"].endswith("/completions")
    ]
    assert asked == []
    assert await stored(services, Conversation) == 0
