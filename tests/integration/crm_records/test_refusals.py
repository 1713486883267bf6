"""Bad requests and other organizations' records: a 4xx with the contract's error body, and
nothing written (no task, call, delivery or job)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from agent_platform.crm.models import CrmConnection
from agent_platform.crm.sandbox.store import DEMO_CONTACT_PHONE, DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.agents import api_key_of, assert_error
from tests.support.crm_records import CALLS, TASKS, counts, created, jobs, task_request
from tests.support.factories import ConnectedAgent, create_connected_agent
from tests.support.kommo_oauth import create_organization

NOT_IN_DATABASE = "00000000-0000-4000-8000-000000000000"
JSON = {"Content-Type": "application/json"}
CALL = {"phone": DEMO_CONTACT_PHONE, "direction": "outbound", "duration": 30, "source": "pbx"}


@pytest.fixture
async def beta(
    services: Services, sandbox: tuple[str, str], api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Another organization, with its own Kommo connection and API key."""
    other = await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Beta"
    )
    headers = await api_key_of(services, other.organization_id)
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        yield client


async def post_json(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    """POST `body` as JSON with non-ASCII escaped, as `\\ud800` (httpx cannot encode a lone
    surrogate, which a JSON body may still carry)."""
    return await api.post(path, content=json.dumps(body), headers=JSON)


async def assert_refused_and_nothing_written(
    services: Services, response: httpx.Response, status: int, code: str
) -> dict[str, Any]:
    body = assert_error(response, status, code)
    assert set((await counts(services)).values()) == {0}
    return body


@pytest.mark.parametrize(
    "change",
    [
        {"lead_id": str(DEMO_LEAD_ID)},  # a number as a string
        {"lead_id": 0},
        {"lead_id": -5},
        {"lead_id": 2**63},  # beyond any Kommo id (and PostgreSQL's bigint)
        {"lead_id": 1002.5},
        {"lead_id": None},  # no entity at all
        {"entity_type": "contacts", "entity_id": 1001},  # a lead and a contact
        {"lead_id": None, "entity_type": "contacts"},  # a type without an id
        {"lead_id": None, "entity_type": "deals", "entity_id": 1},
        {"text": ""},
        {"text": "   "},
        {"text": 42},
        {"text": "call\x00back"},
        {"text": "\ud800"},
        {"text": "x" * 10_001},
        {"complete_till": "2030-01-01T10:00:00"},  # no timezone
        {"complete_till": "tomorrow"},
        {"complete_till": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        {"complete_till": None},
        {"task_type_id": "1"},
        {"task_type_id": 2**31},
        {"responsible_user_id": True},
        {"connection_id": "not-a-uuid"},
        {"priority": "high"},  # not a field
    ],
)
async def test_a_bad_task_is_refused(
    services: Services, acme: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    body = {key: value for key, value in (task_request() | change).items() if value is not None}

    response = await post_json(acme, TASKS, body)

    await assert_refused_and_nothing_written(services, response, 422, "validation_error")


@pytest.mark.parametrize(
    "change",
    [
        {"phone": None},  # neither a phone nor a lead
        {"phone": ""},
        {"phone": "1" * 65},
        {"direction": "sideways"},
        {"duration": -1},
        {"duration": "30"},
        {"duration": 2**31},
        {"source": ""},
        {"call_status": 8},
        {"call_status": "4"},
        {"uniq": "u" * 256},
        {"link": "https://records.example/\x00"},
        {"lead_id": "1002"},
        {"created_at": 1_700_000_000},  # not a field
    ],
)
async def test_a_bad_call_is_refused(
    services: Services, acme: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    body = {key: value for key, value in (CALL | change).items() if value is not None}

    response = await post_json(acme, CALLS, body)

    await assert_refused_and_nothing_written(services, response, 422, "validation_error")


@pytest.mark.parametrize("path", [TASKS, CALLS])
@pytest.mark.parametrize(
    ("content", "headers"),
    [("not json", JSON), ("[1, 2]", JSON), ("", JSON), ("lead_id=1002", {})],
)
async def test_a_body_that_is_no_object_is_refused(
    services: Services, acme: httpx.AsyncClient, path: str, content: str, headers: dict[str, str]
) -> None:
    response = await acme.post(path, content=content, headers=headers)

    await assert_refused_and_nothing_written(services, response, 422, "validation_error")


@pytest.mark.parametrize("path", [TASKS, CALLS])
async def test_an_unknown_connection_is_refused(
    services: Services, acme: httpx.AsyncClient, path: str
) -> None:
    body = task_request() if path == TASKS else CALL
    response = await acme.post(path, json=body | {"connection_id": NOT_IN_DATABASE})

    await assert_refused_and_nothing_written(services, response, 422, "invalid_connection")


@pytest.mark.parametrize("path", [TASKS, CALLS])
async def test_an_organization_without_a_connection_is_told_to_connect_one(
    services: Services, api_url: str, path: str
) -> None:
    _, key = await create_organization(services, "Solo")
    body = task_request() if path == TASKS else CALL
    async with httpx.AsyncClient(base_url=api_url) as api:
        response = await api.post(path, json=body, headers={"Authorization": f"Bearer {key}"})

    refusal = await assert_refused_and_nothing_written(
        services, response, 422, "invalid_connection"
    )
    assert "Connect a Kommo account" in refusal["error"]["message"]


async def test_a_connection_out_of_service_is_refused(
    services: Services, acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(CrmConnection)
            .where(CrmConnection.id == connected.connection_id)
            .values(status="needs_reauth", status_reason="refresh token revoked")
        )

    response = await acme.post(TASKS, json=task_request(connection_id=str(connected.connection_id)))

    refusal = await assert_refused_and_nothing_written(
        services, response, 422, "invalid_connection"
    )
    assert "needs_reauth" in refusal["error"]["message"]


async def test_with_two_connections_the_request_names_one(
    services: Services,
    acme: httpx.AsyncClient,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
) -> None:
    async with transaction(services.sessions) as session:
        second = CrmConnection(
            organization_id=connected.organization_id,
            subdomain="second",
            base_url=sandbox[0],
            access_token_encrypted=services.secrets.encrypt(sandbox[1]),
            webhook_token="second-connection-token",
        )
        session.add(second)
        await session.flush()
        second_id = second.id

    unnamed = await acme.post(TASKS, json=task_request())
    await assert_refused_and_nothing_written(services, unnamed, 422, "invalid_connection")

    named = await created(acme, TASKS, task_request(connection_id=str(second_id)))
    assert named["connection_id"] == str(second_id)


async def test_completing_needs_a_known_task_and_a_good_result(
    services: Services, acme: httpx.AsyncClient
) -> None:
    task = await created(acme, TASKS, task_request())
    before = await counts(services)

    assert_error(await acme.post(f"{TASKS}/{NOT_IN_DATABASE}/complete"), 404, "not_found")
    assert_error(await acme.post(f"{TASKS}/42/complete"), 422, "validation_error")
    for result in ({"result_text": 5}, {"result_text": "ok", "outcome": "won"}):
        response = await acme.post(f"{TASKS}/{task['id']}/complete", json=result)
        assert_error(response, 422, "validation_error")

    assert await counts(services) == before
    assert (await acme.get(f"{TASKS}/{task['id']}")).json()["status"] == "open"


@pytest.mark.parametrize("path", [f"{TASKS}/{NOT_IN_DATABASE}", f"{CALLS}/{NOT_IN_DATABASE}"])
async def test_an_unknown_record_is_not_found(acme: httpx.AsyncClient, path: str) -> None:
    assert_error(await acme.get(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", TASKS), ("POST", TASKS), ("GET", CALLS), ("POST", CALLS)]
)
async def test_the_endpoints_need_an_api_key(api_url: str, method: str, path: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as api:
        assert_error(await api.request(method, path, json=task_request()), 401, "unauthorized")


async def test_another_organization_can_neither_see_nor_complete_our_records(
    services: Services,
    acme: httpx.AsyncClient,
    beta: httpx.AsyncClient,
    connected: ConnectedAgent,
) -> None:
    task = await created(acme, TASKS, task_request())
    call = await created(acme, CALLS, CALL)
    before = await counts(services)
    queued = await jobs(services)

    assert_error(await beta.get(f"{TASKS}/{task['id']}"), 404, "not_found")
    assert_error(await beta.post(f"{TASKS}/{task['id']}/complete"), 404, "not_found")
    assert_error(await beta.get(f"{CALLS}/{call['id']}"), 404, "not_found")
    assert (await beta.get(TASKS)).json() == {"items": [], "next_cursor": None}
    assert (await beta.get(CALLS)).json() == {"items": [], "next_cursor": None}
    assert (await beta.get(TASKS, params={"lead_id": DEMO_LEAD_ID})).json()["items"] == []
    # Nor push through our connection.
    foreign = await beta.post(TASKS, json=task_request(connection_id=str(connected.connection_id)))
    assert_error(foreign, 422, "invalid_connection")

    assert await counts(services) == before
    assert await jobs(services) == queued
    assert (await acme.get(f"{TASKS}/{task['id']}")).json()["status"] == "open"
