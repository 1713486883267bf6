"""The published version answers customers, and each reply records it; the cached agent is
forgotten on every change, in every process sharing Redis; with Redis down the platform
still answers. Real HTTP to the api and the Kommo sandbox, a real worker loop."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Select, select, update

from agent_platform.agent.models import Agent
from agent_platform.agent.published import PublishedAgent, published_agent
from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.conversation.models import Message
from agent_platform.crm.models import InboxEvent, InboxStatus
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services, open_services
from tests.conftest import free_port
from tests.support.agents import (
    AGENTS,
    answer_with,
    api_key_of,
    created,
    patched,
    published,
    version_id,
)
from tests.support.factories import ConnectedAgent, create_connected_agent, message_form
from tests.support.servers import serve_app
from tests.support.worker import running_worker

DEADLINE_SECONDS = 30.0


@contextlib.asynccontextmanager
async def platform(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The api, with Services of its own, and a client of it."""
    assert settings.database_url
    with serve_app(create_app(settings, settings.database_url)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            yield client


async def customer_writes(
    api: httpx.AsyncClient, connected: ConnectedAgent, message_id: str, text: str
) -> None:
    response = await api.post(
        f"/webhooks/kommo/{connected.webhook_token}",
        data=message_form(message_id, text, lead_id=DEMO_LEAD_ID),
    )
    assert response.json()["accepted"] == 1, response.text


async def eventually(services: Services, statement: Select[Any], count: int) -> list[Any]:
    """The rows `statement` selects, once there are `count` of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS
    while True:
        async with transaction(services.sessions) as session:
            found = list(await session.scalars(statement))
        if len(found) >= count:
            return found
        assert loop.time() < deadline, f"timed out waiting for {count} of {statement}"
        await asyncio.sleep(0.1)


async def answers(services: Services, count: int) -> list[Message]:
    replies = select(Message).where(Message.role == "assistant").order_by(Message.created_at)
    return await eventually(services, replies, count)


async def events_ignored(services: Services, count: int) -> list[str | None]:
    ignored = select(InboxEvent.error).where(InboxEvent.status == InboxStatus.IGNORED.value)
    return await eventually(services, ignored, count)


async def system_prompts(fake_llm_url: str) -> list[str]:
    async with httpx.AsyncClient() as client:
        sent: list[dict[str, Any]] = (await client.get(f"{fake_llm_url}/_fake/requests")).json()
    return [request["body"]["messages"][0]["content"] for request in sent]


async def new_agent_for(
    services: Services, api: httpx.AsyncClient, connected: ConnectedAgent
) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers of the connection's organization, and an agent created through the API (its
    version 1 published) that answers the connection's leads."""
    headers = await api_key_of(services, connected.organization_id)
    agent = await created(api, headers, name="Sales", instructions="Version one: be brief.")
    await published(api, headers, agent["id"], 1)
    await answer_with(services, connected.connection_id, agent["id"])
    return headers, agent


async def test_the_published_version_answers_and_each_reply_records_it(
    services: Services,
    settings: Settings,
    connected: ConnectedAgent,
    fake_llm_url: str,
) -> None:
    async with platform(settings) as api:
        headers, agent = await new_agent_for(services, api, connected)
        await patched(api, headers, agent["id"], instructions="Version two: be thorough.")
        async with running_worker(services):
            await customer_writes(api, connected, "m-1", "How much is it?")
            [first] = await answers(services, 1)

            await published(api, headers, agent["id"], 2)
            await customer_writes(api, connected, "m-2", "And delivery?")
            second = (await answers(services, 2))[1]

    assert first.agent_version_id == await version_id(services, agent["id"], 1)
    assert second.agent_version_id == await version_id(services, agent["id"], 2)
    one, two = await system_prompts(fake_llm_url)
    assert "Version one: be brief." in one
    assert "Version two" not in one
    assert "Version two: be thorough." in two


async def test_a_draft_or_archived_agent_does_not_answer(
    services: Services, settings: Settings, connected: ConnectedAgent, fake_llm_url: str
) -> None:
    async with platform(settings) as api:
        headers, agent = await new_agent_for(services, api, connected)
        assert (await api.delete(f"{AGENTS}/{agent['id']}", headers=headers)).status_code == 204
        draft = await created(api, headers, name="Unpublished")
        async with running_worker(services):
            await customer_writes(api, connected, "m-1", "Hello?")
            await events_ignored(services, 1)
            await answer_with(services, connected.connection_id, draft["id"])
            await customer_writes(api, connected, "m-2", "Anyone?")
            reasons = await events_ignored(services, 2)

    assert reasons == ["no active agent", "no active agent"]
    assert await system_prompts(fake_llm_url) == []


@pytest.fixture
def shared_redis_settings(settings: Settings, redis_url: str) -> Settings:
    return settings.model_copy(update={"redis_url": redis_url})


async def test_a_change_is_seen_at_once_by_another_process_sharing_redis(
    shared_redis_settings: Settings, sandbox: tuple[str, str]
) -> None:
    assert shared_redis_settings.database_url
    async with open_services(
        shared_redis_settings, shared_redis_settings.database_url
    ) as worker_side:
        connected = await create_connected_agent(
            worker_side, kommo_url=sandbox[0], kommo_token=sandbox[1]
        )
        # The api runs Services of its own: another process's, on the same Redis.
        async with platform(shared_redis_settings) as api:
            headers, agent = await new_agent_for(worker_side, api, connected)
            agent_id = uuid.UUID(agent["id"])
            first = await read_published(worker_side, agent_id)
            await rename_behind_the_api(worker_side, agent_id, "Renamed in the database")
            cached = await read_published(worker_side, agent_id)
            await patched(api, headers, agent["id"], instructions="Version two.")
            await published(api, headers, agent["id"], 2)
            after_publish = await read_published(worker_side, agent_id)
            await patched(api, headers, agent["id"], status="paused")
            after_pause = await read_published(worker_side, agent_id)
        second_version = await version_id(worker_side, agent["id"], 2)
        assert worker_side.redis is not None
        assert await worker_side.redis.exists(f"cache:agent:v1:{agent_id}")

    assert (first.name, first.instructions) == ("Sales", "Version one: be brief.")
    assert cached == first  # from the cache: the database changed under it
    assert (after_publish.instructions, after_publish.published_version_id) == (
        "Version two.",
        second_version,
    )
    assert (after_publish.status, after_pause.status) == ("active", "paused")


async def read_published(services: Services, agent_id: uuid.UUID) -> PublishedAgent:
    async with transaction(services.sessions) as session:
        found = await published_agent(services, session, agent_id)
    assert found is not None
    return found


async def rename_behind_the_api(services: Services, agent_id: uuid.UUID, name: str) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(name=name))


def cache_errors() -> float:
    return sum(
        REGISTRY.get_sample_value("cache_errors_total", {"operation": operation}) or 0.0
        for operation in ("get", "set", "delete")
    )


async def test_with_redis_down_the_agents_api_works_and_the_agent_answers(
    settings: Settings, sandbox: tuple[str, str], fake_llm_url: str
) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    assert down.database_url
    errors_before = cache_errors()
    async with open_services(down, down.database_url) as services:
        connected = await create_connected_agent(
            services, kommo_url=sandbox[0], kommo_token=sandbox[1]
        )
        async with platform(down) as api:
            headers, agent = await new_agent_for(services, api, connected)
            changed = await patched(api, headers, agent["id"], tone="cheerful")
            async with running_worker(services):
                await customer_writes(api, connected, "m-1", "How much is it?")
                [reply] = await answers(services, 1)
        first_version = await version_id(services, agent["id"], 1)

    assert changed["latest_version"] == 2
    assert reply.content == "Our prices start at 100 USD."
    assert reply.agent_version_id == first_version
    assert cache_errors() > errors_before
