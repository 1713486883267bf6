"""The schedule_follow_up tool in the Kommo reply flow, against the Kommo sandbox and the fake
LLM over real HTTP: the model schedules a follow-up once even when its turn is retried; the
job (run directly, as a worker runs it when due) writes again when the customer stayed
silent, stands down when they wrote or a person took over, and waits for working hours."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from sqlalchemy import select, text, update

from agent_platform.activity.models import ActivityLog
from agent_platform.agent.follow_up import send_follow_up
from agent_platform.agent.models import Agent
from agent_platform.agent.published import forget_agent, published_agent
from agent_platform.agent.runtime.working_hours import WEEKDAYS
from agent_platform.agent.service import answer_inbox_event
from agent_platform.agent.turn import TurnRequest, generate
from agent_platform.conversation.models import Conversation
from agent_platform.crm.kommo.port import KommoPort
from agent_platform.crm.kommo.service import accept_webhook
from agent_platform.crm.kommo.webhooks import read_webhook
from agent_platform.crm.models import InboxEvent
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.fakes.openai_server import FakeConfig, ScriptedToolCall, create_fake_openai_app
from tests.integration.test_llm_reply_flow import sandbox_notes
from tests.support.factories import ConnectedAgent, message_form
from tests.support.servers import serve_app

REPLY = "Our prices start at 100 USD."
FOLLOW_UP_CALL = ScriptedToolCall(
    name="schedule_follow_up", arguments=json.dumps({"delay_hours": 24, "topic": "the sofa"})
)


def follows_up_on_customer_messages() -> FastAPI:
    """The fake LLM as a model that, answering the customer, schedules a follow-up, then
    reads the tool's result and writes its reply (and writes plainly when the follow-up is due).
    """
    fake_app = create_fake_openai_app(reply=REPLY)
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> Response:
        body = await request.json()
        customer_spoke_last = body["messages"][-1]["role"] == "user"
        fake_app.state.fake.configure(
            FakeConfig(tool_calls=[FOLLOW_UP_CALL] if customer_spoke_last else [])
        )
        transport = httpx.ASGITransport(app=fake_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fake") as fake:
            answer = await fake.post("/v1/chat/completions", json=body)
        return Response(answer.content, answer.status_code, media_type="application/json")

    app.mount("/", fake_app)
    return app


@pytest.fixture
def fake_llm_url() -> Iterator[str]:
    with serve_app(follows_up_on_customer_messages()) as url:
        yield url


@pytest.fixture
async def following_up(services: Services, connected: ConnectedAgent) -> ConnectedAgent:
    await configure_agent(services, connected, tools=["schedule_follow_up"])
    return connected


async def configure_agent(services: Services, connected: ConnectedAgent, **values: Any) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(update(Agent).where(Agent.id == connected.agent_id).values(**values))
    await forget_agent(services, connected.agent_id)


async def follow_up_jobs(services: Services) -> list[dict[str, Any]]:
    async with transaction(services.sessions) as session:
        rows = await session.execute(
            text(
                "SELECT args, scheduled_at FROM procrastinate_jobs "
                "WHERE task_name = 'send_follow_up' ORDER BY id"
            )
        )
        return [{"args": row.args, "scheduled_at": row.scheduled_at} for row in rows]


async def run_follow_up(services: Services, job: dict[str, Any]) -> None:
    """The job as the worker runs it when due."""
    await send_follow_up.function(services, **job["args"])


async def activity(services: Services, action: str) -> list[dict[str, Any]]:
    async with transaction(services.sessions) as session:
        rows = await session.scalars(select(ActivityLog).where(ActivityLog.action == action))
        return [row.details for row in rows]


async def customer_writes(services: Services, connected: ConnectedAgent, words: str) -> uuid.UUID:
    """The customer's message accepted as Kommo's webhook brings it; its inbox event's id."""
    form = message_form(f"m-{uuid.uuid4().hex[:8]}", words, lead_id=DEMO_LEAD_ID)
    async with transaction(services.sessions) as session:
        await accept_webhook(
            session,
            services.queue,
            services.settings.job_queue_name,
            connection_token=connected.webhook_token,
            webhook=read_webhook(form.items()),
        )
        newest = select(InboxEvent.id).order_by(InboxEvent.received_at.desc()).limit(1)
        return (await session.scalars(newest)).one()


async def answered(services: Services, connected: ConnectedAgent) -> dict[str, Any]:
    """The customer's message answered, the follow-up scheduled: its one job."""
    event_id = await customer_writes(services, connected, "Is the sofa in stock?")
    await answer_inbox_event(services, event_id)
    [job] = await follow_up_jobs(services)
    return job


async def test_the_follow_up_is_scheduled_once_even_when_the_turn_is_retried(
    services: Services, following_up: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    before = datetime.now(UTC)
    job = await answered(services, following_up)
    async with transaction(services.sessions) as session:
        conversation = (await session.scalars(select(Conversation))).one()
        settings = await published_agent(services, session, following_up.agent_id)
    assert settings is not None
    # The job retried after its turn, before the reply was stored: the turn runs again.
    again = await generate(
        services,
        TurnRequest(
            organization_id=following_up.organization_id,
            conversation_id=conversation.id,
            agent_id=following_up.agent_id,
            agent=settings,
            version_id=None,
            question="Is the sofa in stock?",
            crm=KommoPort(services, following_up.organization_id, following_up.connection_id),
            lead_id=DEMO_LEAD_ID,
        ),
    )

    assert again.text == REPLY
    assert await follow_up_jobs(services) == [job]
    assert job["args"]["topic"] == "the sofa"
    due = job["scheduled_at"]
    assert before + timedelta(hours=24) <= due <= datetime.now(UTC) + timedelta(hours=24)
    assert [n["params"]["text"] for n in await sandbox_notes(sandbox[0])] == [REPLY]


async def test_the_follow_up_is_sent_once_when_the_customer_stayed_silent(
    services: Services, following_up: ConnectedAgent, sandbox: tuple[str, str], fake_llm_url: str
) -> None:
    job = await answered(services, following_up)

    await run_follow_up(services, job)
    await run_follow_up(services, job)  # a retried job

    assert [n["params"]["text"] for n in await sandbox_notes(sandbox[0])] == [REPLY, REPLY]
    sent = await activity(services, "reply.sent")
    assert [d["delivery"] for d in sent][-1] == f"follow_up:{job['args']['call_id']}"
    async with httpx.AsyncClient() as client:
        asked = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    instructions, data = asked[-1]["body"]["messages"][:2]
    assert "follow up" in instructions["content"]
    # The note goes to the model as data, not inside its instructions.
    assert "the sofa" not in instructions["content"]
    assert '"follow_up_note": "the sofa"' in data["content"]


@pytest.mark.parametrize("interruption", ["customer wrote", "handed off"])
async def test_the_follow_up_does_nothing_when_someone_spoke_or_a_person_took_over(
    services: Services,
    following_up: ConnectedAgent,
    sandbox: tuple[str, str],
    interruption: str,
) -> None:
    job = await answered(services, following_up)
    if interruption == "customer wrote":
        await customer_writes(services, following_up, "Still thinking")
        reason = "the customer wrote since"
    else:
        async with transaction(services.sessions) as session:
            await session.execute(update(Conversation).values(handed_off_at=datetime.now(UTC)))
        reason = "the conversation was handed off"

    await run_follow_up(services, job)

    assert [n["params"]["text"] for n in await sandbox_notes(sandbox[0])] == [REPLY]
    skipped = await activity(services, "follow_up.skipped")
    assert [d["reason"] for d in skipped] == [reason]


async def test_out_of_hours_the_follow_up_moves_to_the_next_opening(
    services: Services, following_up: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    job = await answered(services, following_up)
    # Open one hour, two days from now: closed when the job runs.
    opening_day = datetime.now(UTC).date() + timedelta(days=2)
    weekday = WEEKDAYS[opening_day.weekday()]
    await configure_agent(
        services,
        following_up,
        working_hours={"timezone": "UTC", "weekly": {weekday: [["09:00", "10:00"]]}},
    )

    await run_follow_up(services, job)

    assert [n["params"]["text"] for n in await sandbox_notes(sandbox[0])] == [REPLY]
    first, moved = await follow_up_jobs(services)
    assert moved["args"] == first["args"]
    assert moved["scheduled_at"] == datetime.combine(opening_day, time(9), tzinfo=UTC)
    [postponed] = await activity(services, "follow_up.postponed")
    assert postponed["until"] == moved["scheduled_at"].isoformat()


async def test_a_follow_up_job_for_an_unknown_conversation_does_nothing(
    services: Services, following_up: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    job = await answered(services, following_up)
    job["args"]["conversation_id"] = str(uuid.uuid4())

    await run_follow_up(services, job)

    assert [n["params"]["text"] for n in await sandbox_notes(sandbox[0])] == [REPLY]
