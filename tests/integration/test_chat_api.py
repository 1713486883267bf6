"""The chat API over real HTTP with an API key, the fake OpenAI server scripted over HTTP:
JSON and server-sent events, the playground's draft versions, the knowledge base answering
without the model (FAQ; no model; budget spent), summaries of long conversations, the rate
limit, and every refusal a 4xx that stores nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from agent_platform.agent.turn import NO_ANSWER_REASON, SUMMARY_INSTRUCTIONS
from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.conversation.models import Conversation, Message
from agent_platform.db.session import transaction
from agent_platform.organization.models import ApiKey
from agent_platform.services import Services
from tests.conftest import make_settings
from tests.support.agents import api_key_of, assert_error, created, patched, published, version_id
from tests.support.knowledge import add_text, create_tenant
from tests.support.servers import serve_app

CHAT = "/api/v1/chat"
CONVERSATIONS = "/api/v1/conversations"
FAKE_REPLY = "Our prices start at 100 USD."


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
async def fake(fake_llm_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake_llm_url) as client:
        yield client


async def live_agent(
    api: httpx.AsyncClient, headers: dict[str, str], **settings: Any
) -> dict[str, Any]:
    agent = await created(api, headers, name="Seller", instructions="Sell kindly.", **settings)
    return await published(api, headers, agent["id"], 1)


async def model_requests(fake: httpx.AsyncClient) -> list[dict[str, Any]]:
    recorded = (await fake.get("/_fake/requests")).json()
    return [r["body"] for r in recorded if r["path"] == "/v1/chat/completions"]


async def stored_messages(services: Services) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(Message)) or 0)


def parse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


async def test_the_reply_comes_as_json_with_its_conversation_version_and_usage(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)

    response = await api.post(
        CHAT, json={"agent_id": agent["id"], "message": "How much?"}, headers=tenant.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["reply"], body["handoff"], body["source"], body["version"]) == (
        FAKE_REPLY,
        None,
        "model",
        1,
    )
    assert body["usage"]["model"] == "test/model"
    assert body["usage"]["tokens_in"] > 0
    detail = (
        await api.get(f"{CONVERSATIONS}/{body['conversation_id']}", headers=tenant.headers)
    ).json()
    assert detail["channel"] == "api"
    assert [(m["role"], m["text"]) for m in detail["messages"]] == [
        ("user", "How much?"),
        ("assistant", FAKE_REPLY),
    ]
    reply = detail["messages"][1]
    assert reply["id"] == body["message_id"]
    assert reply["agent_version_id"] == str(await version_id(services, agent["id"], 1))
    assert reply["tokens_in"] == body["usage"]["tokens_in"]


async def test_a_conversation_goes_on_with_its_earlier_turns_shown_to_the_model(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    first = (
        await api.post(
            CHAT, json={"agent_id": agent["id"], "message": "Hi"}, headers=tenant.headers
        )
    ).json()

    second = await api.post(
        CHAT,
        json={
            "agent_id": agent["id"],
            "conversation_id": first["conversation_id"],
            "message": "And delivery?",
        },
        headers=tenant.headers,
    )

    assert second.json()["conversation_id"] == first["conversation_id"]
    last = (await model_requests(fake))[-1]
    spoken = [(m["role"], m["content"]) for m in last["messages"] if m["role"] != "system"]
    assert spoken == [("user", "Hi"), ("assistant", FAKE_REPLY), ("user", "And delivery?")]


async def test_a_streamed_reply_comes_in_delta_events_then_the_whole_answer(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)

    response = await api.post(
        CHAT,
        json={"agent_id": agent["id"], "message": "How much?", "stream": True},
        headers=tenant.headers,
    )

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    deltas = [data["text"] for name, data in events if name == "delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == FAKE_REPLY
    name, final = events[-1]
    assert name == "done"
    assert (final["reply"], final["version"]) == (FAKE_REPLY, 1)
    assert final["message_id"]


async def test_accept_event_stream_asks_for_events_too(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)

    response = await api.post(
        CHAT,
        json={"agent_id": agent["id"], "message": "How much?"},
        headers=tenant.headers | {"Accept": "text/event-stream"},
    )

    assert parse_events(response.text)[-1][0] == "done"


async def test_a_draft_version_answers_in_the_playground_without_being_published(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    await patched(api, tenant.headers, agent["id"], instructions="DRAFT: offer a discount.")

    response = await api.post(
        CHAT,
        json={"agent_id": agent["id"], "message": "How much?", "version": 2},
        headers=tenant.headers,
    )

    assert response.json()["version"] == 2
    system = (await model_requests(fake))[-1]["messages"][0]["content"]
    assert "DRAFT: offer a discount." in system
    detail = (
        await api.get(
            f"{CONVERSATIONS}/{response.json()['conversation_id']}", headers=tenant.headers
        )
    ).json()
    assert detail["messages"][-1]["agent_version_id"] == str(
        await version_id(services, agent["id"], 2)
    )
    agent_now = (await api.get(f"/api/v1/agents/{agent['id']}", headers=tenant.headers)).json()
    assert (agent_now["published_version"], agent_now["instructions"]) == (1, "Sell kindly.")


async def test_a_confident_faq_answer_is_the_reply_without_asking_the_model(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    faq = await api.post(
        "/api/v1/knowledge/faqs",
        json={"question": "Do you deliver to Lisbon?", "answer": "Yes, in two days."},
        headers=tenant.headers,
    )
    assert faq.status_code == 201, faq.text
    await fake.delete("/_fake/requests")

    response = await api.post(
        CHAT,
        json={"agent_id": agent["id"], "message": "Do you deliver to Lisbon?"},
        headers=tenant.headers,
    )

    body = response.json()
    assert (body["reply"], body["source"], body["usage"]["tokens_in"]) == (
        "Yes, in two days.",
        "faq",
        None,
    )
    assert await model_requests(fake) == []


@pytest.fixture
def offline_api(settings: Settings, tmp_path: Path, fake_llm_url: str) -> Iterator[str]:
    """The api of the same database with no LLM key: no model to ask."""
    assert settings.database_url
    offline = make_settings(
        settings.database_url,
        tmp_path / "offline",
        fake_llm_url,
        openrouter_api_key=None,
        encryption_key=settings.encryption_key,
        secret_key=settings.secret_key,
    )
    with serve_app(create_app(offline, settings.database_url)) as url:
        yield url


async def test_with_no_model_the_knowledge_base_answers_when_sure_and_hands_over_otherwise(
    services: Services, api: httpx.AsyncClient, offline_api: str
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    await add_text(
        services,
        tenant.organization_id,
        "Warranty: every kettle has a two year warranty.",
        title="Warranty",
    )

    async with httpx.AsyncClient(base_url=offline_api, headers=tenant.headers) as offline:
        sure = (
            await offline.post(CHAT, json={"agent_id": agent["id"], "message": "kettle warranty"})
        ).json()
        unsure = (
            await offline.post(
                CHAT, json={"agent_id": agent["id"], "message": "Can I pay in bitcoin?"}
            )
        ).json()

    assert sure["source"] == "knowledge"
    assert "two year warranty" in sure["reply"]
    assert "Warranty" in sure["reply"]
    assert (unsure["reply"], unsure["handoff"], unsure["message_id"]) == (
        None,
        {"reason": NO_ANSWER_REASON},
        None,
    )
    listed = (
        await api.get(CONVERSATIONS, params={"handed_off": "true"}, headers=tenant.headers)
    ).json()
    assert [c["id"] for c in listed["items"]] == [unsure["conversation_id"]]


async def test_a_spent_budget_answers_from_the_knowledge_base_or_hands_over_not_a_500(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    await add_text(
        services, tenant.organization_id, "Warranty: every kettle has a two year warranty."
    )
    budget = await api.put(
        "/api/v1/llm/budget", json={"monthly_limit_usd": 0}, headers=tenant.headers
    )
    assert budget.status_code == 200, budget.text
    await fake.delete("/_fake/requests")

    sure = await api.post(
        CHAT, json={"agent_id": agent["id"], "message": "kettle warranty"}, headers=tenant.headers
    )
    unsure = await api.post(
        CHAT,
        json={"agent_id": agent["id"], "message": "Can I pay in bitcoin?", "stream": True},
        headers=tenant.headers,
    )

    assert (sure.status_code, sure.json()["source"]) == (200, "knowledge")
    assert parse_events(unsure.text)[-1][1]["handoff"] == {"reason": NO_ANSWER_REASON}
    assert await model_requests(fake) == []


async def test_the_model_asking_for_a_person_hands_the_chat_over(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers, tools=["handoff", "move_stage"])
    await fake.post(
        "/_fake/config",
        json={"tool_calls": [{"name": "handoff", "arguments": '{"reason": "wants a manager"}'}]},
    )

    body = (
        await api.post(
            CHAT,
            json={"agent_id": agent["id"], "message": "A human please"},
            headers=tenant.headers,
        )
    ).json()

    assert (body["reply"], body["handoff"]) == (None, {"reason": "wants a manager"})
    # No CRM behind a chat: only the handoff was offered.
    offered = [tool["function"]["name"] for tool in (await model_requests(fake))[-1]["tools"]]
    assert offered == ["handoff"]
    detail = (
        await api.get(f"{CONVERSATIONS}/{body['conversation_id']}", headers=tenant.headers)
    ).json()
    assert detail["handoff_reason"] == "wants a manager"
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant", "tool"]
    assert detail["messages"][1]["tool_calls"][0]["function"]["name"] == "handoff"


async def test_older_turns_are_summarised_when_the_history_outgrows_the_context(
    services: Services, api: httpx.AsyncClient, fake: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    conversation_id = None
    for index in range(4):
        body = {"agent_id": agent["id"], "message": f"Turn {index}: " + "tell me more " * 300}
        if conversation_id:
            body["conversation_id"] = conversation_id
        conversation_id = (await api.post(CHAT, json=body, headers=tenant.headers)).json()[
            "conversation_id"
        ]

    asked = await model_requests(fake)
    assert any(r["messages"][0]["content"] == SUMMARY_INSTRUCTIONS for r in asked)
    async with transaction(services.sessions) as session:
        conversation = await session.get(Conversation, uuid.UUID(conversation_id))
    assert conversation is not None
    assert conversation.summary == FAKE_REPLY
    assert conversation.summarized_until is not None
    last = asked[-1]["messages"]
    assert any("earlier_conversation" in m["content"] for m in last if m["role"] == "system")
    assert "Turn 0" not in json.dumps([m for m in last if m["role"] == "user"])


@pytest.fixture
def limited_api(settings: Settings, tmp_path: Path, fake_llm_url: str) -> Iterator[str]:
    assert settings.database_url
    limited = make_settings(
        settings.database_url,
        tmp_path / "limited",
        fake_llm_url,
        chat_rate_limit_per_minute=2,
        encryption_key=settings.encryption_key,
        secret_key=settings.secret_key,
    )
    with serve_app(create_app(limited, settings.database_url)) as url:
        yield url


async def test_over_the_rate_limit_a_key_gets_429_with_retry_after(
    services: Services, api: httpx.AsyncClient, limited_api: str
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    other_key = await api_key_of(services, tenant.organization_id)
    chat = {"agent_id": agent["id"], "message": "Hi"}

    async with httpx.AsyncClient(base_url=limited_api) as limited:
        # Two fit in a minute's window; five cannot all fit, even if a window turns meanwhile.
        answers = [await limited.post(CHAT, json=chat, headers=tenant.headers) for _ in range(5)]
        another = await limited.post(CHAT, json=chat, headers=other_key)

    refused = next(response for response in answers if response.status_code == 429)
    assert [response.status_code for response in answers[:2]] == [200, 200]
    body = assert_error(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert body["error"]["details"]["retry_after_seconds"] == int(refused.headers["Retry-After"])
    assert another.status_code == 200


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"agent_id": "not-a-uuid", "message": "Hi"}, "body.agent_id"),
        ({"agent_id": str(uuid.uuid4()), "message": 5}, "body.message"),
        ({"agent_id": str(uuid.uuid4()), "message": ""}, "body.message"),
        ({"agent_id": str(uuid.uuid4()), "message": "Hi", "stream": "sometimes"}, "body.stream"),
        ({"agent_id": str(uuid.uuid4()), "message": "Hi", "version": 0}, "body.version"),
        ({"agent_id": str(uuid.uuid4()), "message": "Hi", "colour": "red"}, "body.colour"),
        ({"message": "Hi"}, "body.agent_id"),
    ],
)
async def test_wrong_types_are_refused_with_422_and_store_nothing(
    services: Services, api: httpx.AsyncClient, payload: dict[str, Any], path: str
) -> None:
    tenant = await create_tenant(services)

    response = await api.post(CHAT, json=payload, headers=tenant.headers)

    body = assert_error(response, 422, "validation_error")
    assert path in [detail["path"] for detail in body["error"]["details"]]
    assert await stored_messages(services) == 0


async def test_unknown_or_foreign_agents_and_conversations_are_not_found(
    services: Services, api: httpx.AsyncClient
) -> None:
    acme = await create_tenant(services, "Acme")
    globex = await create_tenant(services, "Globex")
    acme_agent = await live_agent(api, acme.headers)
    globex_agent = await live_agent(api, globex.headers)
    globex_chat = (
        await api.post(
            CHAT, json={"agent_id": globex_agent["id"], "message": "Hi"}, headers=globex.headers
        )
    ).json()
    before = await stored_messages(services)

    unknown = await api.post(
        CHAT, json={"agent_id": str(uuid.uuid4()), "message": "Hi"}, headers=acme.headers
    )
    foreign_agent = await api.post(
        CHAT, json={"agent_id": globex_agent["id"], "message": "Hi"}, headers=acme.headers
    )
    foreign_conversation = await api.post(
        CHAT,
        json={
            "agent_id": acme_agent["id"],
            "conversation_id": globex_chat["conversation_id"],
            "message": "Hi",
        },
        headers=acme.headers,
    )
    no_version = await api.post(
        CHAT,
        json={"agent_id": acme_agent["id"], "message": "Hi", "version": 9},
        headers=acme.headers,
    )
    read_foreign = await api.get(
        f"{CONVERSATIONS}/{globex_chat['conversation_id']}", headers=acme.headers
    )
    no_key = await api.post(CHAT, json={"agent_id": acme_agent["id"], "message": "Hi"})

    assert_error(unknown, 404, "agent_not_found")
    assert_error(foreign_agent, 404, "agent_not_found")
    assert_error(foreign_conversation, 404, "conversation_not_found")
    assert_error(no_version, 404, "version_not_found")
    assert_error(read_foreign, 404, "conversation_not_found")
    assert_error(no_key, 401, "unauthorized")
    assert await stored_messages(services) == before


async def test_an_agent_never_published_answers_only_with_a_named_version(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    draft = await created(api, tenant.headers, name="Draft")

    refused = await api.post(
        CHAT, json={"agent_id": draft["id"], "message": "Hi"}, headers=tenant.headers
    )
    tried = await api.post(
        CHAT, json={"agent_id": draft["id"], "message": "Hi", "version": 1}, headers=tenant.headers
    )

    assert_error(refused, 409, "agent_not_published")
    assert tried.json()["reply"] == FAKE_REPLY


async def test_conversations_are_listed_newest_first_filtered_and_paged(
    services: Services, api: httpx.AsyncClient
) -> None:
    acme = await create_tenant(services, "Acme")
    globex = await create_tenant(services, "Globex")
    first_agent = await live_agent(api, acme.headers)
    second_agent = await live_agent(api, acme.headers)
    ids = []
    for agent in (first_agent, second_agent, second_agent):
        body = (
            await api.post(
                CHAT, json={"agent_id": agent["id"], "message": "Hi"}, headers=acme.headers
            )
        ).json()
        ids.append(body["conversation_id"])
    globex_agent = await live_agent(api, globex.headers)
    await api.post(
        CHAT, json={"agent_id": globex_agent["id"], "message": "Hi"}, headers=globex.headers
    )

    page_one = (await api.get(CONVERSATIONS, params={"limit": 2}, headers=acme.headers)).json()
    page_two = (
        await api.get(
            CONVERSATIONS,
            params={"limit": 2, "cursor": page_one["next_cursor"]},
            headers=acme.headers,
        )
    ).json()
    by_agent = (
        await api.get(CONVERSATIONS, params={"agent_id": first_agent["id"]}, headers=acme.headers)
    ).json()
    kommo_only = (
        await api.get(CONVERSATIONS, params={"channel": "kommo"}, headers=acme.headers)
    ).json()

    assert [c["id"] for c in page_one["items"] + page_two["items"]] == ids[::-1]
    assert page_two["next_cursor"] is None
    assert [c["id"] for c in by_agent["items"]] == [ids[0]]
    assert kommo_only["items"] == []
    assert_error(
        await api.get(CONVERSATIONS, params={"channel": "fax"}, headers=acme.headers),
        422,
        "validation_error",
    )
    assert_error(
        await api.get(CONVERSATIONS, params={"cursor": "forged"}, headers=acme.headers),
        400,
        "invalid_cursor",
    )
    assert_error(
        await api.get(f"{CONVERSATIONS}/{uuid.uuid4()}", headers=acme.headers),
        404,
        "conversation_not_found",
    )


async def test_a_message_without_words_still_gets_a_reply(
    services: Services, api: httpx.AsyncClient
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    await add_text(services, tenant.organization_id, "Warranty: two years.")

    response = await api.post(
        CHAT, json={"agent_id": agent["id"], "message": "?!  "}, headers=tenant.headers
    )

    assert (response.status_code, response.json()["reply"]) == (200, FAKE_REPLY)


async def test_api_processes_share_a_key_s_limit_through_redis(
    services: Services,
    api: httpx.AsyncClient,
    settings: Settings,
    tmp_path: Path,
    fake_llm_url: str,
    redis_url: str,
) -> None:
    tenant = await create_tenant(services)
    agent = await live_agent(api, tenant.headers)
    assert settings.database_url
    shared = make_settings(
        settings.database_url,
        tmp_path / "shared",
        fake_llm_url,
        chat_rate_limit_per_minute=2,
        redis_url=redis_url,
        encryption_key=settings.encryption_key,
        secret_key=settings.secret_key,
    )
    chat = {"agent_id": agent["id"], "message": "Hi"}

    with (
        serve_app(create_app(shared, settings.database_url)) as first_url,
        serve_app(create_app(shared, settings.database_url)) as second_url,
    ):
        async with httpx.AsyncClient(headers=tenant.headers) as client:
            # Alternating between the processes: each alone would allow two a minute.
            statuses = [
                (await client.post(f"{url}{CHAT}", json=chat)).status_code
                for url in (first_url, second_url) * 3
            ]

    assert statuses[:2] == [200, 200]
    assert 429 in statuses[2:]
    async with transaction(services.sessions) as session:
        key_id = await session.scalar(
            select(ApiKey.id).where(ApiKey.organization_id == tenant.organization_id)
        )
    redis = Redis.from_url(redis_url)
    try:
        counted = [
            int(await redis.get(key) or 0) async for key in redis.scan_iter(f"chat-rate:{key_id}:*")
        ]
    finally:
        await redis.aclose()
    assert sum(counted) == len(statuses)
