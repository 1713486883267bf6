"""The Kommo sandbox answers in Kommo's shapes: bodies, links, pages, filters, 204s, problems.

These talk to the sandbox with plain HTTP, to see exactly what it answers; the client's view of
the same endpoints is in tests/contract/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from agent_platform.crm.sandbox.store import (
    CONTACT_PHONE_FIELD_ID,
    DEMO_COMPANY_ID,
    DEMO_CONTACT_ID,
    DEMO_CONTACT_PHONE,
    DEMO_LEAD_ID,
    INITIAL_CONTACT_STATUS_ID,
    LEAD_BUDGET_FIELD_ID,
    LEAD_SOURCE_FIELD_ID,
    LEAD_SOURCE_REFERRAL_ENUM_ID,
    MANAGER_USER_ID,
    PARTNERS_NEGOTIATION_STATUS_ID,
    PARTNERS_PIPELINE_ID,
    PIPELINE_ID,
    WON_STATUS_ID,
    Lead,
    Note,
)
from tests.contract.sandbox import TOKEN, RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(subdomain="acme") as running:
        yield running


@pytest.fixture
async def kommo(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client holding the token, to see exactly what the sandbox answers."""
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.headers) as http:
        await sandbox.fresh(http)
        yield http


def _validation_paths(response: httpx.Response) -> list[tuple[str, str]]:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["title"]) == (400, "Bad Request")
    return [
        (item["request_id"], error["path"])
        for item in body["validation-errors"]
        for error in item["errors"]
    ]


def _ids(response: httpx.Response, key: str) -> list[int]:
    if response.status_code == 204:
        return []
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["_embedded"][key]]


async def _add_leads(kommo: httpx.AsyncClient, *items: dict[str, Any]) -> list[int]:
    response = await kommo.post("/api/v4/leads", json=list(items))
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["_embedded"]["leads"]]


# --- auth, account, seeded records -----------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN])
async def test_missing_or_wrong_token_is_kommos_401(
    sandbox: RunningSandbox, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=sandbox.url, headers=headers) as http:
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


async def test_demo_lead_contact_and_company_are_seeded_and_linked(
    kommo: httpx.AsyncClient,
) -> None:
    lead = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}", params={"with": "contacts"})).json()
    contact = (await kommo.get(f"/api/v4/contacts/{DEMO_CONTACT_ID}")).json()

    assert (lead["name"], lead["pipeline_id"], lead["status_id"]) == (
        "Demo lead",
        PIPELINE_ID,
        INITIAL_CONTACT_STATUS_ID,
    )
    assert isinstance(lead["created_at"], int)
    assert [(c["id"], c["is_main"]) for c in lead["_embedded"]["contacts"]] == [
        (DEMO_CONTACT_ID, True)
    ]
    assert [c["id"] for c in lead["_embedded"]["companies"]] == [DEMO_COMPANY_ID]
    assert contact["name"] == "Demo Contact"
    [phone] = [f for f in contact["custom_fields_values"] if f["field_code"] == "PHONE"]
    assert phone["values"] == [
        {"value": DEMO_CONTACT_PHONE, "enum_id": phone["values"][0]["enum_id"], "enum_code": "WORK"}
    ]


# --- leads: add, validation, lists ------------------------------------------------------------


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


async def test_a_stage_is_checked_against_its_pipeline(kommo: httpx.AsyncClient) -> None:
    response = await kommo.post(
        "/api/v4/leads",
        json=[
            {
                "pipeline_id": PIPELINE_ID,
                "status_id": PARTNERS_NEGOTIATION_STATUS_ID,
                "request_id": "a",
            },
            {"pipeline_id": 1, "request_id": "b"},
            {"pipeline_id": PARTNERS_PIPELINE_ID, "status_id": WON_STATUS_ID, "request_id": "c"},
        ],
    )

    assert _validation_paths(response) == [("a", "status_id"), ("b", "pipeline_id")]


async def test_a_stage_alone_finds_its_pipeline_and_closed_stages_set_closed_at(
    kommo: httpx.AsyncClient,
) -> None:
    partner, won = await _add_leads(
        kommo, {"status_id": PARTNERS_NEGOTIATION_STATUS_ID}, {"status_id": WON_STATUS_ID}
    )

    partner_lead = (await kommo.get(f"/api/v4/leads/{partner}")).json()
    won_lead = (await kommo.get(f"/api/v4/leads/{won}")).json()
    assert partner_lead["pipeline_id"] == PARTNERS_PIPELINE_ID
    assert partner_lead["closed_at"] is None
    assert (won_lead["pipeline_id"], won_lead["status_id"]) == (PIPELINE_ID, WON_STATUS_ID)
    assert won_lead["closed_at"] == won_lead["created_at"]


async def test_leads_are_filtered_like_kommo(kommo: httpx.AsyncClient) -> None:
    partner, mine, theirs = await _add_leads(
        kommo,
        {"name": "Partner deal", "pipeline_id": PARTNERS_PIPELINE_ID},
        {"name": "Mine", "status_id": INITIAL_CONTACT_STATUS_ID},
        {"name": "Theirs", "responsible_user_id": MANAGER_USER_ID},
    )

    async def ids(params: dict[str, Any] | list[tuple[str, Any]]) -> list[int]:
        return _ids(await kommo.get("/api/v4/leads", params=params), "leads")

    assert await ids([("filter[id][]", partner), ("filter[id][]", theirs)]) == [partner, theirs]
    assert await ids({"filter[pipeline_id][]": PARTNERS_PIPELINE_ID}) == [partner]
    stage = {
        "filter[statuses][0][pipeline_id]": PIPELINE_ID,
        "filter[statuses][0][status_id]": INITIAL_CONTACT_STATUS_ID,
    }
    assert await ids(stage) == [DEMO_LEAD_ID, mine]
    assert await ids({"filter[responsible_user_id][]": MANAGER_USER_ID}) == [theirs]
    assert await ids({"filter[name][]": "mine"}) == [mine]
    assert await ids({"query": "deal"}) == [partner]
    assert await ids({"filter[created_at][to]": 0}) == []
    assert await ids({"order[id]": "desc"}) == [theirs, mine, partner, DEMO_LEAD_ID]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({"limit": 251}, "query.limit"),
        ({"page": 0}, "query.page"),
        ({"filter[id][]": "x"}, "filter.id"),
        ({"order[name]": "asc"}, "order.name"),
        ({"filter[created_at][from]": "yesterday"}, "filter.created_at"),
    ],
)
async def test_a_bad_query_is_a_kommo_400(
    kommo: httpx.AsyncClient, params: dict[str, Any], path: str
) -> None:
    response = await kommo.get("/api/v4/leads", params=params)

    assert _validation_paths(response) == [("0", path)]


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
    assert (await kommo.get("/api/v4/companies/999999")).status_code == 204
    assert (await kommo.get("/api/v4/tasks")).status_code == 204


async def test_more_than_50_items_in_one_write_is_refused(kommo: httpx.AsyncClient) -> None:
    response = await kommo.post("/api/v4/leads", json=[{}] * 51)

    assert _validation_paths(response) == [("0", "body")]


# --- leads: update, complex, custom fields, tags ---------------------------------------------


async def test_patch_moves_a_lead_and_the_feed_records_it(kommo: httpx.AsyncClient) -> None:
    response = await kommo.patch(
        f"/api/v4/leads/{DEMO_LEAD_ID}",
        json={"status_id": WON_STATUS_ID, "price": 900, "responsible_user_id": MANAGER_USER_ID},
    )

    assert response.status_code == 200
    assert set(response.json()) == {"id", "updated_at", "_links"}
    lead = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()
    assert (lead["status_id"], lead["price"], lead["responsible_user_id"]) == (
        WON_STATUS_ID,
        900,
        MANAGER_USER_ID,
    )
    assert lead["closed_at"] is not None
    events = (await kommo.get("/api/v4/events", params={"filter[entity]": "lead"})).json()
    by_type = {event["type"]: event for event in events["_embedded"]["events"]}
    assert by_type["lead_status_changed"]["value_before"] == [
        {"lead_status": {"id": INITIAL_CONTACT_STATUS_ID, "pipeline_id": PIPELINE_ID}}
    ]
    assert by_type["lead_status_changed"]["value_after"] == [
        {"lead_status": {"id": WON_STATUS_ID, "pipeline_id": PIPELINE_ID}}
    ]
    assert by_type["sale_field_changed"]["value_after"] == [{"sale_field_value": {"sale": 900}}]
    assert by_type["entity_responsible_changed"]["value_after"] == [
        {"responsible_user": {"id": MANAGER_USER_ID}}
    ]


async def test_a_batch_update_names_unknown_leads(kommo: httpx.AsyncClient) -> None:
    response = await kommo.patch(
        "/api/v4/leads",
        json=[{"id": DEMO_LEAD_ID, "name": "Renamed"}, {"id": 999_999, "name": "x"}],
    )

    assert _validation_paths(response) == [("1", "id")]
    assert (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()["name"] == "Demo lead"
    assert (await kommo.patch("/api/v4/leads/999999", json={"name": "x"})).status_code == 404


async def test_custom_fields_are_written_by_id_code_and_enum_and_read_back(
    kommo: httpx.AsyncClient,
) -> None:
    [lead_id] = await _add_leads(
        kommo,
        {
            "custom_fields_values": [
                {"field_id": LEAD_BUDGET_FIELD_ID, "values": [{"value": 1500}]},
                {
                    "field_id": LEAD_SOURCE_FIELD_ID,
                    "values": [{"enum_id": LEAD_SOURCE_REFERRAL_ENUM_ID}],
                },
                {"field_code": "UTM_SOURCE", "values": [{"value": "newsletter"}]},
            ]
        },
    )

    lead = (await kommo.get(f"/api/v4/leads/{lead_id}")).json()
    values = {f["field_id"]: f["values"] for f in lead["custom_fields_values"]}
    assert values[LEAD_BUDGET_FIELD_ID] == [{"value": "1500"}]
    assert values[LEAD_SOURCE_FIELD_ID] == [
        {"value": "Referral", "enum_id": LEAD_SOURCE_REFERRAL_ENUM_ID}
    ]
    assert [
        f["values"] for f in lead["custom_fields_values"] if f["field_code"] == "UTM_SOURCE"
    ] == [[{"value": "newsletter"}]]


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ({"field_id": 1, "values": [{"value": "x"}]}, "custom_fields_values.0.field_id"),
        ({"field_code": "NOPE", "values": [{"value": "x"}]}, "custom_fields_values.0.field_code"),
        (
            {"field_id": LEAD_SOURCE_FIELD_ID, "values": [{"enum_id": 5}]},
            "custom_fields_values.0.values.0.enum_id",
        ),
        (
            {"field_id": LEAD_BUDGET_FIELD_ID, "values": [{"value": "lots"}]},
            "custom_fields_values.0.values.0.value",
        ),
        ({"field_id": "8000001", "values": []}, "custom_fields_values.0.field_id"),
    ],
)
async def test_a_bad_custom_field_value_is_named_by_item_and_path(
    kommo: httpx.AsyncClient, field: dict[str, Any], path: str
) -> None:
    response = await kommo.post(
        "/api/v4/leads", json=[{"request_id": "lead-1", "custom_fields_values": [field]}]
    )

    assert _validation_paths(response) == [("lead-1", path)]


async def test_tags_by_name_are_created_once_and_replaced_on_update(
    kommo: httpx.AsyncClient,
) -> None:
    first, second = await _add_leads(
        kommo,
        {"_embedded": {"tags": [{"name": "vip"}]}},
        {"_embedded": {"tags": [{"name": "VIP"}]}},
    )
    tags = (await kommo.get("/api/v4/leads/tags")).json()["_embedded"]["tags"]
    assert [tag["name"] for tag in tags] == ["vip"]

    await kommo.patch(f"/api/v4/leads/{first}", json={"_embedded": {"tags": [{"name": "hot"}]}})

    leads = {
        lead["id"]: [tag["name"] for tag in lead["_embedded"]["tags"]]
        for lead in (await kommo.get("/api/v4/leads")).json()["_embedded"]["leads"]
    }
    assert (leads[first], leads[second]) == (["hot"], ["vip"])
    assert _ids(await kommo.get("/api/v4/contacts/tags"), "tags") == []


async def test_a_complex_lead_makes_its_contact_and_company(kommo: httpx.AsyncClient) -> None:
    response = await kommo.post(
        "/api/v4/leads/complex",
        json=[
            {
                "name": "Website order",
                "price": 300,
                "_embedded": {
                    "contacts": [
                        {
                            "first_name": "Eve",
                            "custom_fields_values": [
                                {
                                    "field_code": "PHONE",
                                    "values": [{"value": "+44 20 7946 0958", "enum_code": "MOB"}],
                                }
                            ],
                        }
                    ],
                    "companies": [{"name": "Eve Ltd"}],
                },
            }
        ],
    )

    assert response.status_code == 200
    [row] = response.json()
    assert (row["request_id"], row["merged"]) == (["0"], False)
    lead = (await kommo.get(f"/api/v4/leads/{row['id']}", params={"with": "contacts"})).json()
    contact = (await kommo.get(f"/api/v4/contacts/{row['contact_id']}")).json()
    assert [c["id"] for c in lead["_embedded"]["contacts"]] == [row["contact_id"]]
    assert [c["id"] for c in lead["_embedded"]["companies"]] == [row["company_id"]]
    assert [c["id"] for c in contact["_embedded"]["companies"]] == [row["company_id"]]
    assert contact["custom_fields_values"][0]["values"][0]["enum_code"] == "MOB"


async def test_a_complex_lead_takes_one_contact_and_checks_its_fields(
    kommo: httpx.AsyncClient,
) -> None:
    two_contacts = {"_embedded": {"contacts": [{"name": "a"}, {"name": "b"}]}}
    bad_phone = {
        "_embedded": {"contacts": [{"custom_fields_values": [{"field_id": 1, "values": []}]}]}
    }

    response = await kommo.post("/api/v4/leads/complex", json=[two_contacts])
    assert _validation_paths(response) == [("0", "_embedded.contacts")]
    response = await kommo.post("/api/v4/leads/complex", json=[bad_phone])
    assert _validation_paths(response) == [
        ("0", "_embedded.contacts.0.custom_fields_values.0.field_id")
    ]


# --- notes -----------------------------------------------------------------------------------


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


async def test_notes_of_an_entity_type_are_filtered_by_entity_and_type(
    kommo: httpx.AsyncClient,
) -> None:
    [other] = await _add_leads(kommo, {})
    await kommo.post(
        "/api/v4/leads/notes",
        json=[
            {"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": "a"}},
            {
                "entity_id": other,
                "note_type": "service_message",
                "params": {"service": "Bot", "text": "b"},
            },
        ],
    )

    async def texts(params: dict[str, Any]) -> list[str]:
        response = await kommo.get("/api/v4/leads/notes", params=params)
        return (
            []
            if response.status_code == 204
            else [n["params"]["text"] for n in response.json()["_embedded"]["notes"]]
        )

    assert await texts({}) == ["a", "b"]
    assert await texts({"filter[entity_id][]": other}) == ["b"]
    assert await texts({"filter[note_type][]": "service_message"}) == ["b"]
    assert await texts({"filter[note_type][]": "call_in"}) == []


@pytest.mark.parametrize(
    ("item", "path"),
    [
        ({"entity_id": "1002", "note_type": "common", "params": {"text": "x"}}, "entity_id"),
        ({"entity_id": DEMO_LEAD_ID, "note_type": "call_in", "params": {"text": "x"}}, "note_type"),
        ({"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {}}, "params.text"),
        ({"entity_id": 999_999, "note_type": "common", "params": {"text": "x"}}, "entity_id"),
        (
            {"entity_id": DEMO_LEAD_ID, "note_type": "service_message", "params": {"text": "x"}},
            "params.service",
        ),
    ],
)
async def test_a_bad_note_fails_the_whole_batch(
    kommo: httpx.AsyncClient, item: dict[str, Any], path: str
) -> None:
    good = {"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {"text": "fine"}}

    response = await kommo.post("/api/v4/leads/notes", json=[good, item])

    assert _validation_paths(response) == [("1", path)]
    assert (await kommo.get("/sandbox/notes")).json() == {"notes": []}


async def test_a_validation_error_names_the_item_by_its_request_id(
    kommo: httpx.AsyncClient,
) -> None:
    bad = {"entity_id": DEMO_LEAD_ID, "note_type": "common", "params": {}, "request_id": "reply-7"}

    response = await kommo.post("/api/v4/leads/notes", json=[bad])

    assert _validation_paths(response) == [("reply-7", "params.text")]


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


# --- tasks, calls, events --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "path"),
    [
        ({"text": "call"}, "complete_till"),
        ({"complete_till": 1}, "text"),
        (
            {"text": "call", "complete_till": 1, "entity_type": "leads", "entity_id": 999_999},
            "entity_id",
        ),
        ({"text": "call", "complete_till": 1, "entity_id": DEMO_LEAD_ID}, "entity_type"),
        ({"text": "call", "complete_till": 1, "task_type_id": 99}, "task_type_id"),
        ({"text": "call", "complete_till": 1, "responsible_user_id": 5}, "responsible_user_id"),
    ],
)
async def test_a_bad_task_is_refused(
    kommo: httpx.AsyncClient, task: dict[str, Any], path: str
) -> None:
    response = await kommo.post("/api/v4/tasks", json=[task])

    assert _validation_paths(response) == [("0", path)]


async def test_a_task_is_completed_with_its_result(kommo: httpx.AsyncClient) -> None:
    task = {
        "text": "Call back",
        "complete_till": 2_000_000_000,
        "entity_type": "leads",
        "entity_id": DEMO_LEAD_ID,
    }
    [row] = (await kommo.post("/api/v4/tasks", json=[task])).json()["_embedded"]["tasks"]
    lead = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()
    assert lead["closest_task_at"] == 2_000_000_000

    response = await kommo.patch(
        f"/api/v4/tasks/{row['id']}", json={"is_completed": True, "result": {"text": "Done"}}
    )

    assert response.status_code == 200
    done = (await kommo.get(f"/api/v4/tasks/{row['id']}")).json()
    assert (done["is_completed"], done["result"]) == (True, {"text": "Done"})
    assert _ids(await kommo.get("/api/v4/tasks", params={"filter[is_completed]": 0}), "tasks") == []
    assert _ids(await kommo.get("/api/v4/tasks", params={"filter[is_completed]": 1}), "tasks") == [
        row["id"]
    ]
    assert (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")).json()["closest_task_at"] is None


async def test_a_call_lands_on_the_contacts_one_open_lead_or_is_reported(
    kommo: httpx.AsyncClient,
) -> None:
    calls = [
        {
            "direction": "inbound",
            "duration": 42,
            "source": "pbx",
            "phone": "(415) 555-0100",
            "uniq": "c-1",
        },
        {
            "direction": "outbound",
            "duration": 5,
            "source": "pbx",
            "phone": "+1 000 000 0000",
            "request_id": "x",
        },
    ]

    response = await kommo.post("/api/v4/calls", json=calls)

    assert response.status_code == 200
    body = response.json()
    [call] = body["_embedded"]["calls"]
    assert (call["entity_type"], call["entity_id"], call["request_id"]) == (
        "lead",
        DEMO_LEAD_ID,
        "0",
    )
    assert [(e["request_id"], e["status"]) for e in body["errors"]] == [("x", 404)]
    [note] = (await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}/notes")).json()["_embedded"]["notes"]
    assert (note["note_type"], note["params"]["duration"], note["params"]["uniq"]) == (
        "call_in",
        42,
        "c-1",
    )


async def test_a_call_goes_to_the_contact_when_its_lead_is_closed(kommo: httpx.AsyncClient) -> None:
    await kommo.patch(f"/api/v4/leads/{DEMO_LEAD_ID}", json={"status_id": WON_STATUS_ID})

    response = await kommo.post(
        "/api/v4/calls",
        json=[
            {"direction": "outbound", "duration": 0, "source": "pbx", "phone": DEMO_CONTACT_PHONE}
        ],
    )

    [call] = response.json()["_embedded"]["calls"]
    assert (call["entity_type"], call["entity_id"]) == ("contact", DEMO_CONTACT_ID)


async def test_events_are_newest_first_and_filtered(kommo: httpx.AsyncClient) -> None:
    [lead_id] = await _add_leads(kommo, {"name": "new"})
    await kommo.post("/api/v4/contacts", json=[{"name": "Someone"}])

    response = await kommo.get("/api/v4/events")
    types = [event["type"] for event in response.json()["_embedded"]["events"]]
    assert types == ["contact_added", "lead_added"]
    only_leads = await kommo.get(
        "/api/v4/events", params={"filter[entity]": "lead", "filter[entity_id][]": lead_id}
    )
    assert [e["entity_id"] for e in only_leads.json()["_embedded"]["events"]] == [lead_id]
    by_type = await kommo.get(
        "/api/v4/events", params={"filter[type]": "contact_added,lead_deleted"}
    )
    assert [e["type"] for e in by_type.json()["_embedded"]["events"]] == ["contact_added"]
    event_id = response.json()["_embedded"]["events"][0]["id"]
    assert (await kommo.get(f"/api/v4/events/{event_id}")).json()["type"] == "contact_added"
    bad = await kommo.get("/api/v4/events", params={"filter[entity_id][]": lead_id})
    assert _validation_paths(bad) == [("0", "filter.entity_id")]


# --- webhooks, store hooks, request log, switches --------------------------------------------


async def test_webhooks_are_subscribed_replaced_listed_and_removed(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    destination = "https://platform.example/webhooks/kommo/abc"
    first = await kommo.post(
        "/api/v4/webhooks", json={"destination": destination, "settings": ["add_lead"]}
    )
    again = await kommo.post(
        "/api/v4/webhooks",
        json={"destination": destination, "settings": ["add_lead", "status_lead"]},
    )

    assert first.json()["id"] == again.json()["id"]
    listed = (
        await kommo.get("/api/v4/webhooks", params={"filter[destination]": destination})
    ).json()
    assert [w["settings"] for w in listed["_embedded"]["webhooks"]] == [["add_lead", "status_lead"]]
    assert [w.destination for w in sandbox.store.webhooks_for("status_lead")] == [destination]
    assert sandbox.store.webhooks_for("add_contact") == []
    assert (
        await kommo.request("DELETE", "/api/v4/webhooks", json={"destination": destination})
    ).status_code == 204
    assert (await kommo.get("/api/v4/webhooks")).status_code == 204
    missing = await kommo.request("DELETE", "/api/v4/webhooks", json={"destination": destination})
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"destination": "not a url", "settings": ["add_lead"]}, "destination"),
        ({"destination": "https://x.example", "settings": ["add_everything"]}, "settings.0"),
        ({"destination": "https://x.example", "settings": []}, "settings"),
    ],
)
async def test_a_bad_webhook_is_refused(
    kommo: httpx.AsyncClient, body: dict[str, Any], path: str
) -> None:
    assert _validation_paths(await kommo.post("/api/v4/webhooks", json=body)) == [("0", path)]


async def test_store_listeners_hear_every_change(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    heard: list[tuple[str, str, object]] = []
    unsubscribe = sandbox.store.subscribe(
        lambda entity, action, record: heard.append((entity, action, record))
    )
    try:
        [lead_id] = await _add_leads(kommo, {"name": "Heard"})
        await kommo.patch(f"/api/v4/leads/{lead_id}", json={"status_id": WON_STATUS_ID})
        await kommo.post(
            "/api/v4/leads/notes",
            json=[{"entity_id": lead_id, "note_type": "common", "params": {"text": "hi"}}],
        )
        sandbox.store.delete("leads", lead_id)
    finally:
        unsubscribe()
    await _add_leads(kommo, {"name": "Not heard"})

    assert [(entity, action) for entity, action, _ in heard] == [
        ("leads", "add"),
        ("leads", "update"),
        ("leads", "status"),
        ("leads", "note"),
        ("leads", "delete"),
    ]
    added, updated = heard[0][2], heard[1][2]
    assert isinstance(added, Lead)
    assert isinstance(updated, Lead)
    assert (added.status_id != WON_STATUS_ID, updated.status_id) == (True, WON_STATUS_ID)
    assert isinstance(heard[3][2], Note)


async def test_chat_messages_open_the_leads_talk_and_are_heard(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    heard: list[tuple[str, str, object]] = []
    unsubscribe = sandbox.store.subscribe(
        lambda entity, action, record: heard.append((entity, action, record))
    )
    try:
        incoming = sandbox.store.add_incoming_message(DEMO_LEAD_ID, "Hi")
        outgoing = sandbox.store.add_outgoing_message(DEMO_LEAD_ID, "Hello!", MANAGER_USER_ID)
        with pytest.raises(KeyError):
            sandbox.store.add_incoming_message(999_999, "To nobody")
        with pytest.raises(KeyError):
            sandbox.store.add_outgoing_message(DEMO_LEAD_ID, "From nobody", user_id=42)
    finally:
        unsubscribe()

    talk = sandbox.store.talk_of(DEMO_LEAD_ID)
    assert talk is not None
    assert [(entity, action) for entity, action, _ in heard] == [
        ("talks", "add"),
        ("messages", "add"),
        ("talks", "update"),
        ("messages", "add"),
    ]
    assert (heard[1][2], heard[3][2]) == (incoming, outgoing)
    assert (talk.contact_id, talk.customer_name) == (DEMO_CONTACT_ID, "Demo Contact")
    assert (incoming.chat_id, incoming.author_id, incoming.direction) == (
        talk.chat_id,
        talk.customer_id,
        "incoming",
    )
    assert (outgoing.author_id, outgoing.author_name, outgoing.direction) == (
        str(MANAGER_USER_ID),
        "Sales Manager",
        "outgoing",
    )
    assert sandbox.store.messages_of(DEMO_LEAD_ID) == [incoming, outgoing]
    events = await kommo.get(
        "/api/v4/events", params={"filter[type]": "incoming_chat_message,outgoing_chat_message"}
    )
    assert [
        (e["type"], e["entity_id"], e["created_by"]) for e in events.json()["_embedded"]["events"]
    ] == [
        ("outgoing_chat_message", DEMO_LEAD_ID, MANAGER_USER_ID),
        ("incoming_chat_message", DEMO_LEAD_ID, 0),
    ]


async def test_a_failing_listener_does_not_fail_the_request(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    def broken(entity: str, action: str, record: object) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = sandbox.store.subscribe(broken)
    try:
        assert await _add_leads(kommo, {"name": "Still added"})
    finally:
        unsubscribe()


async def test_the_request_log_holds_api_requests_only(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    await kommo.get("/api/v4/leads")
    await kommo.get("/api/v4/leads/999999")
    await kommo.get("/sandbox/notes")

    assert [(r.method, r.path, r.status) for r in sandbox.store.requests] == [
        ("GET", "/api/v4/leads", 200),
        ("GET", "/api/v4/leads/999999", 204),
    ]
    first, second = sandbox.store.requests
    assert first.at <= second.at


async def test_the_gateway_timeout_switch_refuses_large_batches(
    kommo: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    sandbox.store.gateway_timeout_above = 1

    refused = await kommo.post("/api/v4/leads", json=[{}, {}])
    accepted = await kommo.post("/api/v4/leads", json=[{}])

    assert refused.status_code == 504
    assert refused.headers["content-type"] == "application/problem+json"
    assert accepted.status_code == 200
    assert len(sandbox.store.leads()) == 2


async def test_reset_forgets_everything_but_the_demo_records(kommo: httpx.AsyncClient) -> None:
    note = {"entity_id": DEMO_CONTACT_ID, "note_type": "common", "params": {"text": "hi"}}
    await kommo.post("/api/v4/contacts/notes", json=[note])
    await kommo.post("/api/v4/leads", json=[{"name": "temporary"}])

    assert (await kommo.post("/sandbox/reset")).status_code == 204

    assert (await kommo.get("/sandbox/notes")).json() == {"notes": []}
    leads = (await kommo.get("/api/v4/leads")).json()["_embedded"]["leads"]
    assert [lead["id"] for lead in leads] == [DEMO_LEAD_ID]
    contact = (await kommo.get(f"/api/v4/contacts/{DEMO_CONTACT_ID}")).json()
    assert CONTACT_PHONE_FIELD_ID in [f["field_id"] for f in contact["custom_fields_values"]]
