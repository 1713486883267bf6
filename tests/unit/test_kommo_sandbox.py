"""The Kommo sandbox answers in Kommo's shapes: bodies, links, pages, 204s and problem errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.crm.sandbox.store import (
    DEMO_CONTACT_ID,
    DEMO_LEAD_ID,
    INITIAL_CONTACT_STATUS_ID,
    PIPELINE_ID,
)
from tests.support.servers import serve_app

TOKEN = "sandbox-access-token"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_app(create_sandbox_app(access_token=TOKEN, subdomain="acme")) as base_url:
        yield base_url


@pytest.fixture
async def kommo(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client holding the token, to see exactly what the sandbox answers."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers) as http:
        (await http.post("/sandbox/reset")).raise_for_status()
        yield http


def _validation_paths(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["title"]) == (400, "Bad Request")
    return [
        (item["request_id"], error["path"])
        for item in body["validation-errors"]
        for error in item["errors"]
    ]


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN])
async def test_missing_or_wrong_token_is_kommos_401(
    sandbox_url: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=sandbox_url, headers=headers) as http:
        response = await http.get("/api/v4/account")

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert {key: body[key] for key in ("title", "type", "status")} == {
        "title": "Unauthorized",
        "type": "https://httpstatus.es/401",
        "status": 401,
    }
    assert body["detail"]


async def test_account_names_the_subdomain(kommo: httpx.AsyncClient) -> None:
    response = await kommo.get("/api/v4/account")

    assert response.headers["content-type"] == "application/hal+json"
    assert response.json()["subdomain"] == "acme"


async def test_demo_lead_and_contact_are_seeded(kommo: httpx.AsyncClient) -> None:
    lead = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()
    contact = (await kommo.get(f"/api/v4/contacts/{DEMO_CONTACT_ID}")).json()

    assert (lead["name"], lead["pipeline_id"], lead["status_id"]) == (
        "Demo lead",
        PIPELINE_ID,
        INITIAL_CONTACT_STATUS_ID,
    )
    assert isinstance(lead["created_at"], int)
    assert contact["name"] == "Demo Contact"


async def test_added_leads_answer_with_ids_request_ids_and_links(
    kommo: httpx.AsyncClient,
) -> None:
    response = await kommo.post(
        "/api/v4/leads", json=[{"name": "Big deal", "price": 500, "request_id": "mine"}, {}]
    )

    rows = response.json()["_embedded"]["leads"]
    assert [row["request_id"] for row in rows] == ["mine", "1"]
    first = (await kommo.get(rows[0]["_links"]["self"]["href"])).json()
    assert (first["id"], first["name"], first["price"]) == (rows[0]["id"], "Big deal", 500)
    second = (await kommo.get(f"/api/v4/leads/{rows[1]['id']}")).json()
    assert second["name"] == f"Lead #{rows[1]['id']}"


async def test_lead_in_an_unknown_stage_is_refused(kommo: httpx.AsyncClient) -> None:
    response = await kommo.post("/api/v4/leads", json=[{"name": "ok"}, {"status_id": 1}])

    assert _validation_paths(response) == [("1", "status_id")]
    assert len((await kommo.get("/api/v4/leads")).json()["_embedded"]["leads"]) == 1


async def test_lists_are_paged_with_a_next_link(kommo: httpx.AsyncClient) -> None:
    await kommo.post("/api/v4/contacts", json=[{"first_name": "Ann", "last_name": "Lee"}] * 2)

    first = (await kommo.get("/api/v4/contacts", params={"limit": 2})).json()
    second = (await kommo.get(first["_links"]["next"]["href"])).json()

    assert first["_page"] == 1
    assert [c["name"] for c in first["_embedded"]["contacts"]] == ["Demo Contact", "Ann Lee"]
    assert second["_page"] == 2
    assert "next" not in second["_links"]
    assert [c["name"] for c in second["_embedded"]["contacts"]] == ["Ann Lee"]


async def test_a_page_past_the_end_and_an_unknown_id_are_204(kommo: httpx.AsyncClient) -> None:
    assert (await kommo.get("/api/v4/leads", params={"page": 2})).status_code == 204
    assert (await kommo.get("/api/v4/leads/999999")).status_code == 204
    assert (await kommo.get("/api/v4/contacts/999999")).status_code == 204


async def test_notes_are_added_in_batches_and_listed_in_either_order(
    kommo: httpx.AsyncClient,
) -> None:
    batch = [
        {"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": text}}
        for text in ("first", "second")
    ]
    added = (await kommo.post("/api/v4/leads/notes", json=batch)).json()["_embedded"]["notes"]

    assert [(row["entity_id"], row["request_id"]) for row in added] == [
        (DEMO_LEAD_ID, "0"),
        (DEMO_LEAD_ID, "1"),
    ]
    path = f"/api/v4/leads/{DEMO_LEAD_ID}/notes"
    ascending = (await kommo.get(path)).json()["_embedded"]["notes"]
    descending = (await kommo.get(path, params={"order[id]": "desc"})).json()
    assert [n["params"]["text"] for n in ascending] == ["first", "second"]
    assert [n["params"]["text"] for n in descending["_embedded"]["notes"]] == ["second", "first"]
    assert ascending[0]["note_type"] == "common"


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"entity_id": "1002", "note_type": "common", "params": {"text": "x"}}, "entity_id"),
        ({"entity_id": DEMO_LEAD_ID, "note_type": "call_in", "params": {"text": "x"}}, "note_type"),
        ({"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {}}, "params.text"),
        ({"entity_id": 999_999, "note_type": "common", "params": {"text": "x"}}, "entity_id"),
    ],
)
async def test_a_bad_note_fails_the_whole_batch(
    kommo: httpx.AsyncClient, item: dict[str, Any], path: str
) -> None:
    good = {"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": "fine"}}

    response = await kommo.post("/api/v4/leads/notes", json=[good, item])

    assert _validation_paths(response) == [("1", path)]
    assert (await kommo.get("/sandbox/notes")).json() == {"notes": []}


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"entity_id": 1}'],
    ids=["malformed", "empty-batch", "not-a-batch"],
)
async def test_a_body_that_is_no_batch_is_a_kommo_400_not_a_422(
    kommo: httpx.AsyncClient, content: bytes
) -> None:
    response = await kommo.post(
        "/api/v4/leads/notes", content=content, headers={"Content-Type": "application/json"}
    )

    assert _validation_paths(response) == [("0", "body")]


async def test_a_bad_query_is_a_kommo_400(kommo: httpx.AsyncClient) -> None:
    response = await kommo.get("/api/v4/leads", params={"limit": 251})

    assert _validation_paths(response) == [("0", "query.limit")]


async def test_reset_forgets_everything_but_the_demo_records(kommo: httpx.AsyncClient) -> None:
    note = {"entity_id": DEMO_CONTACT_ID, "note_type": "common", "params": {"text": "hi"}}
    await kommo.post("/api/v4/contacts/notes", json=[note])
    await kommo.post("/api/v4/leads", json=[{"name": "temporary"}])

    assert (await kommo.post("/sandbox/reset")).status_code == 204

    assert (await kommo.get("/sandbox/notes")).json() == {"notes": []}
    leads = (await kommo.get("/api/v4/leads")).json()["_embedded"]["leads"]
    assert [lead["id"] for lead in leads] == [DEMO_LEAD_ID]
