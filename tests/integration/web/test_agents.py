"""The agents pages over HTTP: create, edit (main and advanced, errors shown per field),
publish and roll back, the automation and integration tabs, the playground's stream from the
fake LLM, and who may do what (another organization's agent is not found, a viewer reads)."""

from __future__ import annotations

import json
import re
import secrets
import uuid
from typing import Any

import httpx
from sqlalchemy import func, select

from agent_platform.agent.models import Agent, AgentVersion
from agent_platform.automation.models import Sequence, Trigger
from agent_platform.automation.sequences.schemas import SequenceIn
from agent_platform.automation.sequences.service import create_sequence
from agent_platform.automation.triggers.schemas import TriggerIn
from agent_platform.automation.triggers.service import create_trigger
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.organization.models import Role
from agent_platform.services import Services
from tests.integration.automation_api.helpers import sequence_body, trigger_body
from tests.support.agents import api_key_of, created
from tests.support.people import create_person
from tests.support.web_client import form_token, signed_in

FAKE_REPLY = "Our prices start at 100 USD."
AGENT_PATH = re.compile(r"^/app/agents/([0-9a-f-]{36})\?notice=created$")


async def create_on_page(client: httpx.AsyncClient, **values: str) -> uuid.UUID:
    token = form_token(await client.get("/app/agents"))
    fields = {"name": "Seller", "instructions": "Sell kindly.", "model": "test/model"} | values
    answer = await client.post("/app/agents", data=fields | {"csrf_token": token})
    assert answer.status_code == 303, answer.text
    found = AGENT_PATH.match(answer.headers["location"])
    assert found, answer.headers["location"]
    return uuid.UUID(found.group(1))


async def post_form(
    client: httpx.AsyncClient, page: str, action: str, fields: dict[str, Any]
) -> httpx.Response:
    token = form_token(await client.get(page))
    return await client.post(action, data=fields | {"csrf_token": token})


async def versions_of(services: Services, agent_id: uuid.UUID) -> list[AgentVersion]:
    async with transaction(services.sessions) as session:
        found = await session.scalars(
            select(AgentVersion)
            .where(AgentVersion.agent_id == agent_id)
            .order_by(AgentVersion.number)
        )
        return list(found)


async def agent_row(services: Services, agent_id: uuid.UUID) -> Agent:
    async with transaction(services.sessions) as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent


async def agent_count(services: Services) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(Agent)) or 0)


def events_of(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


MAIN = {"name": "Seller", "instructions": "Sell kindly.", "model": "test/model", "status": "draft"}


async def test_an_agent_created_on_the_page_is_listed_as_a_draft_with_version_1(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        empty = await client.get("/app/agents")
        assert 'data-testid="no-agents"' in empty.text

        agent_id = await create_on_page(client, name="Night <seller>")

        listing = await client.get("/app/agents")
        assert f'href="/app/agents/{agent_id}"' in listing.text
        assert "Night &lt;seller&gt;" in listing.text
        assert "Draft" in listing.text
        assert "Not published" in listing.text
        assert "test/model" in listing.text
        edit = await client.get(f"/app/agents/{agent_id}?notice=created")
        assert 'data-testid="notice"' in edit.text
    versions = await versions_of(services, agent_id)
    assert [version.number for version in versions] == [1]
    assert versions[0].settings["instructions"] == "Sell kindly."
    assert versions[0].created_by == f"user:{person.user_id}"
    assert (await agent_row(services, agent_id)).organization_id == person.organization_id


async def test_a_new_agent_without_a_name_is_refused_on_the_form(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        answer = await post_form(
            client,
            "/app/agents",
            "/app/agents",
            {"name": "  ", "instructions": "Sell.", "model": "test/model"},
        )
    assert answer.status_code == 422
    assert 'data-testid="error-name"' in answer.text
    assert 'value="test/model"' in answer.text
    assert await agent_count(services) == 0


async def test_editing_the_main_tab_saves_a_new_version_only_when_something_changed(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        page = f"/app/agents/{agent_id}"

        saved = await post_form(
            client, page, page, MAIN | {"name": "Closer", "instructions": "Close deals."}
        )
        assert saved.status_code == 303
        assert saved.headers["location"] == f"{page}?notice=saved"
        again = await post_form(
            client, page, page, MAIN | {"name": "Closer", "instructions": "Close deals."}
        )
        assert again.headers["location"] == f"{page}?notice=unchanged"

        shown = await client.get(page)
        assert 'value="Closer"' in shown.text
        assert 'data-testid="version-2"' in shown.text
    versions = await versions_of(services, agent_id)
    assert [version.number for version in versions] == [1, 2]
    assert versions[1].settings["name"] == "Closer"
    assert versions[1].settings["instructions"] == "Close deals."


async def test_activating_an_agent_that_was_never_published_is_refused_on_the_status_field(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        page = f"/app/agents/{agent_id}"
        answer = await post_form(client, page, page, MAIN | {"status": "active"})
        unknown = await post_form(client, page, page, MAIN | {"status": "archived"})
    assert answer.status_code == 409
    assert 'data-testid="error-status"' in answer.text
    assert unknown.status_code == 422
    assert 'data-testid="error-status"' in unknown.text
    assert (await agent_row(services, agent_id)).status == "draft"


ADVANCED = {
    "language": "auto",
    "tone": "warm",
    "temperature": "0.3",
    "max_tokens": "",
    "fallback_models": "",
    "stop_words": "unsubscribe\nstop",
    "takeover_pause_minutes": "60",
    "debounce_seconds": "5",
    "max_replies_per_conversation_per_day": "20",
    "working_hours.enabled": "on",
    "working_hours.timezone": "Europe/Moscow",
    "working_hours.weekly.mon": "09:00-13:00, 14:00-18:00",
    "working_hours.holidays": "2026-01-01",
    "working_hours.outside_hours": "out_of_hours_message",
    "working_hours.out_of_hours_message": "We answer from 9 in the morning.",
    "handoff.keywords": "manager\nhuman",
    "handoff.on_llm_request": "on",
    "handoff.max_turns": "10",
    "handoff.max_consecutive_errors": "",
    "handoff.responsible_user_id": "",
    "handoff.task_text": "Please take over.",
    "handoff.pause_minutes": "",
    "tools": ["create_task", "handoff"],
}


async def test_advanced_settings_are_validated_by_the_schema_with_each_error_by_its_field(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        page = f"/app/agents/{agent_id}/advanced"

        refused = await post_form(
            client,
            page,
            page,
            ADVANCED
            | {
                "working_hours.timezone": "Mars/Olympus",
                "working_hours.weekly.tue": "18:00-09:00",
                "debounce_seconds": "999",
                "tools": ["create_task", "teleport"],
            },
        )
        assert refused.status_code == 422
        for field in (
            "working_hours.timezone",
            "working_hours.weekly.tue",
            "debounce_seconds",
            "tools",
        ):
            assert f'data-testid="error-{field}"' in refused.text, field
        assert "unknown time zone" in refused.text
        assert "Mars/Olympus" in refused.text  # the form comes back as it was posted
        assert len(await versions_of(services, agent_id)) == 1

        saved = await post_form(client, page, page, ADVANCED)
        assert saved.status_code == 303
        assert saved.headers["location"] == f"{page}?notice=saved"
        shown = await client.get(page)
    assert 'value="09:00-13:00, 14:00-18:00"' in shown.text
    settings = (await versions_of(services, agent_id))[-1].settings
    assert settings["working_hours"]["timezone"] == "Europe/Moscow"
    assert settings["working_hours"]["weekly"] == {"mon": [["09:00", "13:00"], ["14:00", "18:00"]]}
    assert settings["stop_words"] == ["unsubscribe", "stop"]
    assert settings["debounce_seconds"] == 5
    assert settings["max_replies_per_conversation_per_day"] == 20
    assert settings["handoff"]["keywords"] == ["manager", "human"]
    assert settings["handoff"]["max_turns"] == 10
    assert settings["tools"] == ["create_task", "handoff"]
    assert settings["instructions"] == "Sell kindly."  # the main tab's settings are kept


async def test_publishing_and_rolling_back_versions(services: Services, api_url: str) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        page = f"/app/agents/{agent_id}"
        await post_form(client, page, page, MAIN | {"instructions": "Version two."})

        published = await post_form(client, page, f"{page}/versions/2/publish", {})
        assert published.headers["location"] == f"{page}?notice=published"
        assert (await agent_row(services, agent_id)).instructions == "Version two."
        shown = await client.get(page)
        assert "Version 2 answers customers" in shown.text
        assert f'action="{page}/versions/1/rollback"' in shown.text

        rolled = await post_form(client, page, f"{page}/versions/1/rollback", {})
        assert rolled.headers["location"] == f"{page}?notice=rolled_back"
        agent = await agent_row(services, agent_id)
        assert agent.instructions == "Sell kindly."
        assert agent.status == "active"

        forward = await post_form(client, page, f"{page}/versions/2/rollback", {})
        assert forward.status_code == 409
        assert 'data-testid="error-message"' in forward.text


async def test_another_organizations_agent_is_not_found(services: Services, api_url: str) -> None:
    owner = await create_person(services)
    stranger = await create_person(services, organization_name="Other Co")
    async with signed_in(api_url, owner) as client:
        agent_id = await create_on_page(client)
    async with signed_in(api_url, stranger) as client:
        page = f"/app/agents/{agent_id}"
        token = form_token(await client.get("/app/agents"))
        for tab in ("", "/triggers", "/sequences", "/integrations", "/advanced"):
            assert (await client.get(page + tab)).status_code == 404, tab
        edit = await client.post(page, data=MAIN | {"name": "Mine", "csrf_token": token})
        publish = await client.post(f"{page}/versions/1/publish", data={"csrf_token": token})
        chat = await client.post(
            f"{page}/playground", data={"message": "Hi"}, headers={"X-CSRF-Token": token}
        )
    assert (edit.status_code, publish.status_code, chat.status_code) == (404, 404, 404)
    assert [version.number for version in await versions_of(services, agent_id)] == [1]


async def test_a_viewer_reads_the_agent_but_cannot_change_it(
    services: Services, api_url: str
) -> None:
    viewer = await create_person(services, role=Role.VIEWER)
    headers = await api_key_of(services, viewer.organization_id)
    async with httpx.AsyncClient(base_url=api_url) as api:
        agent = await created(api, headers, name="Seller")
    page = f"/app/agents/{agent['id']}"
    async with signed_in(api_url, viewer) as client:
        listing = await client.get("/app/agents")
        shown = await client.get(page)
        advanced = await client.get(f"{page}/advanced")
        token = form_token(shown)
        edit = await client.post(page, data=MAIN | {"name": "Changed", "csrf_token": token})
        new = await client.post("/app/agents", data=MAIN | {"csrf_token": token})
        publish = await client.post(f"{page}/versions/1/publish", data={"csrf_token": token})
        chat = await client.post(
            f"{page}/playground", data={"message": "Hi"}, headers={"X-CSRF-Token": token}
        )
    assert listing.status_code == shown.status_code == advanced.status_code == 200
    assert "Seller" in listing.text
    assert 'action="/app/agents"' not in listing.text
    assert 'data-testid="playground"' not in shown.text
    assert '<fieldset class="plain" disabled>' in shown.text
    assert "versions/1/publish" not in shown.text
    assert (edit.status_code, new.status_code, publish.status_code, chat.status_code) == (
        403,
        403,
        403,
        403,
    )
    assert await agent_count(services) == 1
    assert (await agent_row(services, uuid.UUID(agent["id"]))).name == "Seller"


async def test_the_playground_streams_the_draft_versions_reply_from_the_model(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        page = f"/app/agents/{agent_id}"
        token = form_token(await client.get(page))
        headers = {"X-CSRF-Token": token, "Accept": "text/event-stream"}

        first = await client.post(
            f"{page}/playground", data={"message": "How much?"}, headers=headers
        )
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("text/event-stream")
        events = events_of(first.text)
        deltas = "".join(data["text"] for name, data in events if name == "delta")
        assert deltas == FAKE_REPLY
        name, done = events[-1]
        assert name == "done"
        assert done["reply"] == FAKE_REPLY
        assert done["version"] == 1

        second = await client.post(
            f"{page}/playground",
            data={"message": "And delivery?", "conversation_id": done["conversation_id"]},
            headers=headers,
        )
        assert events_of(second.text)[-1][1]["conversation_id"] == done["conversation_id"]

        empty = await client.post(f"{page}/playground", data={"message": ""}, headers=headers)
        assert empty.status_code == 422
        unsigned = await client.post(f"{page}/playground", data={"message": "Hi"})
        assert unsigned.status_code == 403


async def test_the_automation_and_integration_tabs_show_the_agents_own_rows(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        agent_id = await create_on_page(client)
        other_id = await create_on_page(client, name="Other")
        organization_id = person.organization_id
        trigger = await create_trigger(
            services,
            organization_id,
            TriggerIn.model_validate(trigger_body(name="Hot lead", agent_id=agent_id)),
        )
        await create_trigger(
            services,
            organization_id,
            TriggerIn.model_validate(trigger_body(name="Not mine", agent_id=other_id)),
        )
        sequence = await create_sequence(
            services,
            organization_id,
            SequenceIn.model_validate(sequence_body(name="Warm-up", agent_id=agent_id)),
        )
        async with transaction(services.sessions) as session:
            session.add(
                CrmConnection(
                    organization_id=organization_id,
                    subdomain="acme-sales",
                    base_url="https://acme-sales.kommo.com",
                    webhook_token=secrets.token_urlsafe(16),
                    agent_id=agent_id,
                )
            )
        page = f"/app/agents/{agent_id}"

        triggers = await client.get(f"{page}/triggers")
        assert f'href="/app/automation/triggers/{trigger.id}"' in triggers.text
        assert "Not mine" not in triggers.text
        switched = await post_form(
            client,
            f"{page}/triggers",
            f"{page}/triggers/{trigger.id}/enabled",
            {"enabled": "false"},
        )
        assert switched.headers["location"] == f"{page}/triggers"
        sequences = await client.get(f"{page}/sequences")
        assert f'href="/app/automation/sequences/{sequence.id}"' in sequences.text
        await post_form(
            client,
            f"{page}/sequences",
            f"{page}/sequences/{sequence.id}/enabled",
            {"enabled": "false"},
        )
        not_its_own = await post_form(
            client,
            f"{page}/triggers",
            f"/app/agents/{other_id}/triggers/{trigger.id}/enabled",
            {"enabled": "true"},
        )
        integrations = await client.get(f"{page}/integrations")
        elsewhere = await client.get(f"/app/agents/{other_id}/integrations")
    assert not_its_own.status_code == 404
    assert "acme-sales" in integrations.text
    assert 'data-testid="no-connections"' in elsewhere.text
    async with transaction(services.sessions) as session:
        switched_trigger = await session.get(Trigger, trigger.id)
        switched_sequence = await session.get(Sequence, sequence.id)
    assert switched_trigger is not None
    assert switched_trigger.enabled is False
    assert switched_sequence is not None
    assert switched_sequence.enabled is False
