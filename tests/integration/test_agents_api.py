"""The agents REST API over real HTTP with an API key: creating, reading, changing, archiving,
versions, publishing and rolling back; every refusal a 4xx with the contract's error body that
changes nothing; another organization's agent is not found."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from agent_platform.activity.models import ActivityLog
from agent_platform.agent.models import Agent, AgentVersion
from agent_platform.agent.schemas import AgentSettings
from agent_platform.agent.versions import settings_of
from agent_platform.db.session import transaction
from agent_platform.organization.models import Organization
from agent_platform.services import Services
from tests.support.agents import (
    AGENTS,
    api_key_of,
    assert_error,
    created,
    patched,
    published,
)

Headers = dict[str, str]

FULL_SETTINGS: dict[str, Any] = {
    "name": "Night shift",
    "description": "Answers leads from the website.",
    "instructions": "Qualify the lead; offer a call.",
    "model": "openai/gpt-4o-mini",
    "fallback_models": ["anthropic/claude-3.5-haiku"],
    "temperature": 0.7,
    "max_tokens": 800,
    "language": "ru",
    "tone": "warm, brief",
    "working_hours": {
        "timezone": "Europe/Moscow",
        "weekly": {"mon": [["14:00", "18:00"], ["09:00", "13:00"]], "sat": [["22:00", "24:00"]]},
        "holidays": ["2027-01-01"],
        "outside_hours": "out_of_hours_message",
        "out_of_hours_message": "We answer from 9 to 18.",
    },
    "stop_words": ["отписаться", "stop calling"],
    "handoff": {
        "keywords": ["manager", "менеджер"],
        "max_turns": 12,
        "on_llm_request": False,
        "max_consecutive_errors": 3,
        "responsible_user_id": 5001,
        "task_text": "Call the lead back.",
        "pause_minutes": None,
    },
    "takeover_pause_minutes": 90,
    "debounce_seconds": 20,
    "max_replies_per_conversation_per_day": 40,
    "tools": ["create_task", "handoff"],
    "active_stages": [{"pipeline_id": 7, "status_id": 142}, {"pipeline_id": 8, "status_id": None}],
    "lead_fields": [8_000_003, 8_000_005],
}


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        yield client


async def new_organization(services: Services, name: str) -> Headers:
    async with transaction(services.sessions) as session:
        organization = Organization(name=name, slug=f"{name.lower()}-{uuid.uuid4().hex[:6]}")
        session.add(organization)
    return await api_key_of(services, organization.id)


@pytest.fixture
async def acme(services: Services) -> Headers:
    return await new_organization(services, "Acme")


@pytest.fixture
async def beta(services: Services) -> Headers:
    return await new_organization(services, "Beta")


async def row_counts(services: Services) -> tuple[int, int, int]:
    """Agents, versions and activity entries: what a refused request must not add to."""
    async with transaction(services.sessions) as session:
        return (
            await session.scalar(select(func.count()).select_from(Agent)) or 0,
            await session.scalar(select(func.count()).select_from(AgentVersion)) or 0,
            await session.scalar(select(func.count()).select_from(ActivityLog)) or 0,
        )


def settings_in(agent: dict[str, Any]) -> dict[str, Any]:
    return {name: agent[name] for name in AgentSettings.model_fields}


# --- create, read, list ---------------------------------------------------------------------


async def test_a_new_agent_is_a_draft_with_version_1_and_the_schema_defaults(
    api: httpx.AsyncClient, acme: Headers, services: Services
) -> None:
    agent = await created(api, acme, name="Sales", note="first try")

    assert agent["status"] == "draft"
    assert (agent["published_version"], agent["latest_version"]) == (None, 1)
    assert settings_in(agent) == AgentSettings(name="Sales", model="test/model").model_dump(
        mode="json"
    )
    got = await api.get(f"{AGENTS}/{agent['id']}", headers=acme)
    assert got.json() == agent
    versions = (await api.get(f"{AGENTS}/{agent['id']}/versions", headers=acme)).json()
    [version] = versions["items"]
    assert (version["number"], version["note"], version["published"]) == (1, "first try", False)
    assert version["created_by"].startswith("api_key:")
    one = (await api.get(f"{AGENTS}/{agent['id']}/versions/1", headers=acme)).json()
    assert one["settings"] == settings_in(agent)


async def test_every_setting_is_stored_and_given_back(
    api: httpx.AsyncClient, acme: Headers, services: Services
) -> None:
    agent = await created(api, acme, **FULL_SETTINGS)

    expected = FULL_SETTINGS | {
        "working_hours": FULL_SETTINGS["working_hours"]
        # A day's intervals come back in order.
        | {"weekly": {"mon": [["09:00", "13:00"], ["14:00", "18:00"]], "sat": [["22:00", "24:00"]]}}
    }
    assert settings_in(agent) == expected
    assert settings_in((await api.get(f"{AGENTS}/{agent['id']}", headers=acme)).json()) == expected
    async with transaction(services.sessions) as session:
        row = await session.get(Agent, uuid.UUID(agent["id"]))
        assert row is not None
        assert settings_of(row).model_dump(mode="json") == expected


async def test_any_model_name_is_accepted(api: httpx.AsyncClient, acme: Headers) -> None:
    agent = await created(api, acme, name="Local", model="ollama/qwen2.5:14b-instruct")
    assert agent["model"] == "ollama/qwen2.5:14b-instruct"


async def test_the_list_pages_newest_first_and_leaves_archived_agents_out(
    api: httpx.AsyncClient, acme: Headers, beta: Headers
) -> None:
    first, second, third = [await created(api, acme, name=name) for name in ("A", "B", "C")]
    await created(api, beta, name="Beta's")
    assert (await api.delete(f"{AGENTS}/{second['id']}", headers=acme)).status_code == 204

    page = (await api.get(AGENTS, params={"limit": 1}, headers=acme)).json()
    assert [agent["id"] for agent in page["items"]] == [third["id"]]
    rest = await api.get(AGENTS, params={"limit": 1, "cursor": page["next_cursor"]}, headers=acme)
    assert [agent["id"] for agent in rest.json()["items"]] == [first["id"]]
    assert rest.json()["next_cursor"] is None
    archived = await api.get(AGENTS, params={"status": "archived"}, headers=acme)
    assert [agent["id"] for agent in archived.json()["items"]] == [second["id"]]


# --- changes and versions -------------------------------------------------------------------


async def test_a_change_before_the_first_publish_shows_on_the_draft(
    api: httpx.AsyncClient, acme: Headers
) -> None:
    agent = await created(api, acme, name="Draft")

    changed = await patched(api, acme, agent["id"], name="Renamed", debounce_seconds=30)

    assert (changed["name"], changed["debounce_seconds"]) == ("Renamed", 30)
    assert (changed["latest_version"], changed["published_version"]) == (2, None)


async def test_a_change_is_a_new_version_and_the_published_one_keeps_answering(
    api: httpx.AsyncClient, acme: Headers
) -> None:
    agent = await created(api, acme, name="Sales", instructions="Be brief.")
    await published(api, acme, agent["id"], 1)

    changed = await patched(
        api,
        acme,
        agent["id"],
        instructions="Be thorough.",
        working_hours={"timezone": "UTC", "weekly": {"tue": [["08:00", "17:00"]]}},
        note="longer answers",
    )

    assert (changed["published_version"], changed["latest_version"]) == (1, 2)
    assert changed["instructions"] == "Be brief."
    assert changed["working_hours"] is None
    two = (await api.get(f"{AGENTS}/{agent['id']}/versions/2", headers=acme)).json()
    assert two["settings"]["instructions"] == "Be thorough."
    assert two["settings"]["working_hours"]["weekly"] == {"tue": [["08:00", "17:00"]]}
    assert two["settings"]["name"] == "Sales"
    assert (two["note"], two["published"]) == ("longer answers", False)
    listed = (await api.get(f"{AGENTS}/{agent['id']}/versions", headers=acme)).json()["items"]
    assert [(v["number"], v["published"]) for v in listed] == [(2, False), (1, True)]

    cleared = await patched(api, acme, agent["id"], max_tokens=None, tone="calm")
    three = (await api.get(f"{AGENTS}/{agent['id']}/versions/3", headers=acme)).json()
    assert cleared["latest_version"] == 3
    assert three["settings"]["instructions"] == "Be thorough."  # built on the latest, not v1
    assert (three["settings"]["max_tokens"], three["settings"]["tone"]) == (None, "calm")


async def test_publishing_activates_a_draft_and_rolling_back_publishes_an_older_version(
    api: httpx.AsyncClient, acme: Headers, services: Services
) -> None:
    agent = await created(api, acme, name="Sales", instructions="One.")
    await patched(api, acme, agent["id"], instructions="Two.")

    live = await published(api, acme, agent["id"], 2)
    assert (live["status"], live["published_version"], live["instructions"]) == (
        "active",
        2,
        "Two.",
    )
    assert live["published_by"].startswith("api_key:")
    assert live["published_at"] is not None

    back = await api.post(f"{AGENTS}/{agent['id']}/rollback", json={"version": 1}, headers=acme)
    assert back.status_code == 200, back.text
    assert (back.json()["published_version"], back.json()["instructions"]) == (1, "One.")
    assert back.json()["latest_version"] == 2

    forward = await api.post(f"{AGENTS}/{agent['id']}/rollback", json={"version": 2}, headers=acme)
    assert_error(forward, 409, "not_an_older_version")
    async with transaction(services.sessions) as session:
        log = (
            await session.execute(
                select(ActivityLog.action, ActivityLog.details, ActivityLog.actor_type)
                .where(ActivityLog.entity_id == agent["id"])
                .order_by(ActivityLog.created_at)
            )
        ).all()
    assert [tuple(entry) for entry in log] == [
        ("agent.published", {"version": 2, "previous_version": None}, "api_key"),
        ("agent.rolled_back", {"version": 1, "previous_version": 2}, "api_key"),
    ]


async def test_rolling_back_needs_something_published(
    api: httpx.AsyncClient, acme: Headers
) -> None:
    agent = await created(api, acme, name="Sales")
    response = await api.post(f"{AGENTS}/{agent['id']}/rollback", json={"version": 1}, headers=acme)
    assert_error(response, 409, "not_an_older_version")


async def test_status_changes_are_not_versions_and_activating_needs_a_published_version(
    api: httpx.AsyncClient, acme: Headers, services: Services
) -> None:
    agent = await created(api, acme, name="Sales")
    before = await row_counts(services)

    refused = await api.patch(f"{AGENTS}/{agent['id']}", json={"status": "active"}, headers=acme)
    assert_error(refused, 409, "agent_not_published")
    assert await row_counts(services) == before

    await published(api, acme, agent["id"], 1)
    paused = await patched(api, acme, agent["id"], status="paused")
    assert (paused["status"], paused["latest_version"]) == ("paused", 1)
    republished = await published(api, acme, agent["id"], 1)
    assert republished["status"] == "paused"  # publishing is not resuming
    resumed = await patched(api, acme, agent["id"], status="active")
    assert (resumed["status"], resumed["latest_version"]) == ("active", 1)


async def test_deleting_archives_the_agent_and_keeps_its_versions(
    api: httpx.AsyncClient, acme: Headers
) -> None:
    agent = await created(api, acme, name="Sales")
    await published(api, acme, agent["id"], 1)

    assert (await api.delete(f"{AGENTS}/{agent['id']}", headers=acme)).status_code == 204
    assert (await api.delete(f"{AGENTS}/{agent['id']}", headers=acme)).status_code == 204

    archived = (await api.get(f"{AGENTS}/{agent['id']}", headers=acme)).json()
    assert (archived["status"], archived["published_version"]) == ("archived", 1)
    versions = await api.get(f"{AGENTS}/{agent['id']}/versions/1", headers=acme)
    assert versions.status_code == 200
    for response in (
        await api.patch(f"{AGENTS}/{agent['id']}", json={"name": "Back"}, headers=acme),
        await api.patch(f"{AGENTS}/{agent['id']}", json={"status": "active"}, headers=acme),
        await api.post(f"{AGENTS}/{agent['id']}/publish", json={"version": 1}, headers=acme),
    ):
        assert_error(response, 409, "agent_archived")


# --- tenancy and authentication -------------------------------------------------------------


async def test_another_organizations_agent_is_not_found_and_stays_as_it_was(
    api: httpx.AsyncClient, acme: Headers, beta: Headers, services: Services
) -> None:
    agent = await created(api, acme, name="Acme's")
    path = f"{AGENTS}/{agent['id']}"
    before = await row_counts(services)

    for response in (
        await api.get(path, headers=beta),
        await api.patch(path, json={"name": "Stolen"}, headers=beta),
        await api.delete(path, headers=beta),
        await api.post(f"{path}/publish", json={"version": 1}, headers=beta),
        await api.post(f"{path}/rollback", json={"version": 1}, headers=beta),
        await api.get(f"{path}/versions", headers=beta),
        await api.get(f"{path}/versions/1", headers=beta),
    ):
        assert_error(response, 404, "agent_not_found")
    assert (await api.get(AGENTS, headers=beta)).json()["items"] == []
    assert await row_counts(services) == before
    assert (await api.get(path, headers=acme)).json() == agent


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer ap_nope_nope"}, {"X-API-Key": "not-a-key"}],
    ids=["none", "unknown", "malformed"],
)
async def test_requests_without_a_valid_api_key_are_refused(
    api: httpx.AsyncClient, headers: Headers, services: Services
) -> None:
    assert_error(await api.get(AGENTS, headers=headers), 401, "unauthorized")
    response = await api.post(AGENTS, json={"name": "X", "model": "m"}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert await row_counts(services) == (0, 0, 0)


# --- bad input ------------------------------------------------------------------------------


def hours(**changes: Any) -> dict[str, Any]:
    return {"working_hours": {"timezone": "Europe/Berlin"} | changes}


BAD_NEW_AGENTS: dict[str, tuple[dict[str, Any], str]] = {
    # case: (settings over a valid {name, model}, where the error is)
    "unknown time zone": (hours(timezone="Mars/Olympus_Mons"), "working_hours.timezone"),
    "hour without zero": (hours(weekly={"mon": [["9:00", "18:00"]]}), "working_hours.weekly"),
    "hour 25": (hours(weekly={"mon": [["09:00", "25:00"]]}), "working_hours.weekly.mon"),
    "minute 60": (hours(weekly={"mon": [["09:60", "18:00"]]}), "working_hours.weekly.mon"),
    "end before start": (hours(weekly={"fri": [["18:00", "09:00"]]}), "working_hours.weekly.fri"),
    "empty interval": (hours(weekly={"fri": [["10:00", "10:00"]]}), "working_hours.weekly.fri"),
    "overlapping intervals": (
        hours(weekly={"wed": [["09:00", "13:00"], ["12:00", "18:00"]]}),
        "working_hours.weekly.wed",
    ),
    "unknown weekday": (hours(weekly={"monday": [["09:00", "18:00"]]}), "working_hours.weekly"),
    "interval of three": (
        hours(weekly={"mon": [["09:00", "12:00", "18:00"]]}),
        "working_hours.weekly.mon",
    ),
    "not a date": (hours(holidays=["2027-02-30"]), "working_hours.holidays"),
    "message missing": (hours(outside_hours="out_of_hours_message"), "working_hours"),
    "unknown outside_hours": (hours(outside_hours="ignore"), "working_hours.outside_hours"),
    "temperature above 2": ({"temperature": 2.5}, "temperature"),
    "temperature below 0": ({"temperature": -0.1}, "temperature"),
    "temperature as text": ({"temperature": "hot"}, "temperature"),
    "unknown tool": ({"tools": ["send_email"]}, "tools"),
    "tool twice": ({"tools": ["add_tag", "add_tag"]}, "tools"),
    "tools as text": ({"tools": "add_tag"}, "tools"),
    "negative debounce": ({"debounce_seconds": -1}, "debounce_seconds"),
    "debounce over 300": ({"debounce_seconds": 301}, "debounce_seconds"),
    "negative takeover pause": ({"takeover_pause_minutes": -5}, "takeover_pause_minutes"),
    "zero max tokens": ({"max_tokens": 0}, "max_tokens"),
    "zero daily cap": (
        {"max_replies_per_conversation_per_day": 0},
        "max_replies_per_conversation_per_day",
    ),
    "zero handoff turns": ({"handoff": {"max_turns": 0}}, "handoff.max_turns"),
    "negative responsible user": (
        {"handoff": {"responsible_user_id": -1}},
        "handoff.responsible_user_id",
    ),
    "unknown handoff field": ({"handoff": {"after_turns": 3}}, "handoff.after_turns"),
    "zero pipeline": ({"active_stages": [{"pipeline_id": 0}]}, "active_stages.0.pipeline_id"),
    "lead field not an id": ({"lead_fields": [0]}, "lead_fields.0"),
    "lead field twice": ({"lead_fields": [8_000_003, 8_000_003]}, "lead_fields"),
    "too many lead fields": ({"lead_fields": list(range(1, 52))}, "lead_fields"),
    "name too long": ({"name": "n" * 201}, "name"),
    "blank name": ({"name": "   "}, "name"),
    "instructions too long": ({"instructions": "i" * 50_001}, "instructions"),
    "too many stop words": ({"stop_words": [f"w{i}" for i in range(201)]}, "stop_words"),
    "stop word too long": ({"stop_words": ["s" * 101]}, "stop_words.0"),
    "blank stop word": ({"stop_words": [" "]}, "stop_words.0"),
    "too many fallback models": ({"fallback_models": ["m"] * 6}, "fallback_models"),
    "language not a tag": ({"language": "english please"}, "language"),
    "unknown field": ({"temprature": 0.5}, "temprature"),
}


@pytest.mark.parametrize(("changes", "path"), BAD_NEW_AGENTS.values(), ids=BAD_NEW_AGENTS.keys())
async def test_a_bad_new_agent_is_refused_and_nothing_is_written(
    api: httpx.AsyncClient, acme: Headers, services: Services, changes: dict[str, Any], path: str
) -> None:
    body = {"name": "Sales", "model": "test/model"} | changes

    response = await api.post(AGENTS, json=body, headers=acme)

    details = assert_error(response, 422, "validation_error")["error"]["details"]
    assert any(detail["path"].startswith(f"body.{path}") for detail in details), details
    assert await row_counts(services) == (0, 0, 0)


@pytest.mark.parametrize(
    "body",
    [{"model": "test/model"}, {"name": "Sales"}, [], "name=Sales"],
    ids=["no name", "no model", "array", "not json"],
)
async def test_a_new_agent_needs_a_json_object_with_name_and_model(
    api: httpx.AsyncClient, acme: Headers, services: Services, body: Any
) -> None:
    sent = (
        await api.post(AGENTS, content=body, headers=acme)
        if isinstance(body, str)
        else await api.post(AGENTS, json=body, headers=acme)
    )
    assert_error(sent, 422, "validation_error")
    assert await row_counts(services) == (0, 0, 0)


BAD_PATCHES: dict[str, dict[str, Any]] = {
    "nothing": {},
    "null name": {"name": None},
    "null model": {"model": None},
    "null status": {"status": None},
    "a note alone": {"note": "why"},
    "unknown status": {"status": "archived"},
    "bad setting": {"temperature": 3},
    "bad hours": hours(weekly={"sun": [["10:00", "09:00"]]}),
    "unknown field": {"colour": "blue"},
}


@pytest.mark.parametrize("body", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
async def test_a_bad_change_is_refused_and_nothing_is_written(
    api: httpx.AsyncClient, acme: Headers, services: Services, body: dict[str, Any]
) -> None:
    agent = await created(api, acme, name="Sales")
    before = await row_counts(services)

    response = await api.patch(f"{AGENTS}/{agent['id']}", json=body, headers=acme)

    assert_error(response, 422, "validation_error")
    assert await row_counts(services) == before
    assert (await api.get(f"{AGENTS}/{agent['id']}", headers=acme)).json() == agent


@pytest.mark.parametrize("action", ["publish", "rollback"])
@pytest.mark.parametrize(
    "body", [{}, {"version": 0}, {"version": "two"}, {"version": 1, "at": "now"}]
)
async def test_a_bad_version_choice_is_refused(
    api: httpx.AsyncClient, acme: Headers, services: Services, action: str, body: dict[str, Any]
) -> None:
    agent = await created(api, acme, name="Sales")
    before = await row_counts(services)

    response = await api.post(f"{AGENTS}/{agent['id']}/{action}", json=body, headers=acme)

    assert_error(response, 422, "validation_error")
    assert await row_counts(services) == before


async def test_unknown_agents_and_versions_are_not_found(
    api: httpx.AsyncClient, acme: Headers, services: Services
) -> None:
    agent = await created(api, acme, name="Sales")
    before = await row_counts(services)

    assert_error(await api.get(f"{AGENTS}/{uuid.uuid4()}", headers=acme), 404, "agent_not_found")
    assert_error(
        await api.get(f"{AGENTS}/{agent['id']}/versions/9", headers=acme), 404, "version_not_found"
    )
    for action in ("publish", "rollback"):
        response = await api.post(
            f"{AGENTS}/{agent['id']}/{action}", json={"version": 9}, headers=acme
        )
        assert_error(response, 404, "version_not_found")
    assert await row_counts(services) == before


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        (f"{AGENTS}/not-a-uuid", {}, 422, "validation_error"),
        (f"{AGENTS}/{uuid.uuid4()}/versions/0", {}, 422, "validation_error"),
        (AGENTS, {"status": "deleted"}, 422, "validation_error"),
        (AGENTS, {"limit": 0}, 422, "validation_error"),
        (AGENTS, {"cursor": "forged"}, 400, "invalid_cursor"),
    ],
)
async def test_bad_paths_and_queries_are_refused(
    api: httpx.AsyncClient,
    acme: Headers,
    path: str,
    params: dict[str, Any],
    status: int,
    code: str,
) -> None:
    assert_error(await api.get(path, params=params, headers=acme), status, code)


async def test_the_openapi_document_shows_the_agents_api_and_its_schemas(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/api/openapi.json")).json()

    assert {
        "/api/v1/agents",
        "/api/v1/agents/{agent_id}",
        "/api/v1/agents/{agent_id}/publish",
        "/api/v1/agents/{agent_id}/rollback",
        "/api/v1/agents/{agent_id}/versions",
        "/api/v1/agents/{agent_id}/versions/{number}",
    } <= set(document["paths"])
    schemas = document["components"]["schemas"]
    assert {"AgentCreate", "AgentPatch", "AgentOut", "WorkingHours", "Handoff"} <= set(schemas)
    assert set(schemas["AgentCreate"]["required"]) == {"name", "model"}
    assert "required" not in schemas["AgentPatch"]
