"""The sandbox's answers have the shape of the examples in Kommo's public developer pages.

Each test names the page its example comes from. An example is trimmed to the fields it shows;
`assert_shaped_like` checks that every key of the example is in the sandbox's answer, with a
value of the same JSON type (nulls match anything), recursively, lists by their first item.
Values differ (ids, names); only the shape is Kommo's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from agent_platform.crm.sandbox.store import (
    DEMO_CONTACT_ID,
    DEMO_LEAD_ID,
    LEAD_SOURCE_FIELD_ID,
    PIPELINE_ID,
)
from tests.contract.sandbox import RunningSandbox, running_sandbox

LINK = {"self": {"href": "https://devteam.kommo.com/api/v4/..."}}


def assert_shaped_like(actual: Any, example: Any, where: str = "$") -> None:
    if example is None or actual is None:
        return
    if isinstance(example, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        missing = set(example) - set(actual)
        assert not missing, f"{where}: missing {sorted(missing)}"
        for key, value in example.items():
            assert_shaped_like(actual[key], value, f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(actual, list), f"{where}: expected an array, got {actual!r}"
        if example and actual:
            assert_shaped_like(actual[0], example[0], f"{where}[0]")
    elif isinstance(example, bool):
        assert isinstance(actual, bool), f"{where}: expected a boolean, got {actual!r}"
    elif isinstance(example, int | float):
        assert not isinstance(actual, bool), f"{where}: expected a number, got {actual!r}"
        assert isinstance(actual, int | float), f"{where}: expected a number, got {actual!r}"
    else:
        assert isinstance(actual, type(example)), (
            f"{where}: expected {type(example).__name__}, got {actual!r}"
        )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
async def kommo(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, headers=sandbox.headers) as http:
        await sandbox.fresh(http)
        yield http


async def _json(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/hal+json"
    return response.json()


async def test_account(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/errors ("200 Successful": account info)."""
    example = {
        "id": 123123123,
        "name": "yourname",
        "subdomain": "yourdomain",
        "created_at": 1739794993,
        "created_by": 0,
        "updated_at": 17234645,
        "updated_by": 0,
        "current_user_id": 123423,
        "country": "NL",
        "currency": "EUR",
        "currency_symbol": "€",
        "_links": LINK,
    }

    assert_shaped_like(await _json(await kommo.get("/api/v4/account")), example)


async def test_pipelines_list(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/leads-pipelines-and-statuses ("Leads
    pipelines list", response example); every pipeline ends with 142 and 143."""
    status = {
        "id": 58141803,
        "name": "Incoming leads",
        "sort": 10,
        "is_editable": False,
        "pipeline_id": 6950551,
        "color": "#c1c1c1",
        "type": 1,
        "account_id": 31361463,
        "_links": LINK,
    }
    example = {
        "_total_items": 2,
        "_links": LINK,
        "_embedded": {
            "pipelines": [
                {
                    "id": 6950551,
                    "name": "Pipeline",
                    "sort": 1,
                    "is_main": True,
                    "is_unsorted_on": True,
                    "is_archive": False,
                    "account_id": 31361463,
                    "_links": LINK,
                    "_embedded": {"statuses": [status]},
                }
            ]
        },
    }

    body = await _json(await kommo.get("/api/v4/leads/pipelines"))

    assert_shaped_like(body, example)
    for pipeline in body["_embedded"]["pipelines"]:
        assert [s["id"] for s in pipeline["_embedded"]["statuses"]][-2:] == [142, 143]
    single = await _json(await kommo.get(f"/api/v4/leads/pipelines/{PIPELINE_ID}/statuses/142"))
    assert_shaped_like(single, status)


async def test_custom_field_definition(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/errors ("201 Created": a select field)."""
    example = {
        "id": 1016236,
        "name": "Client Type",
        "type": "select",
        "account_id": 34389139,
        "code": None,
        "sort": 500,
        "is_api_only": False,
        "enums": [{"id": 867968, "value": "New", "sort": 500}],
        "group_id": None,
        "required_statuses": [],
        "is_deletable": True,
        "is_predefined": False,
        "entity_type": "leads",
        "tracking_callback": None,
        "remind": None,
        "triggers": [],
        "currency": None,
        "hidden_statuses": [],
        "chained_lists": None,
        "_links": LINK,
    }

    field = await _json(await kommo.get(f"/api/v4/leads/custom_fields/{LEAD_SOURCE_FIELD_ID}"))
    fields = await _json(await kommo.get("/api/v4/contacts/custom_fields"))

    assert_shaped_like(field, example)
    assert_shaped_like(
        fields,
        {
            "_total_items": 1,
            "_page": 1,
            "_page_count": 1,
            "_links": LINK,
            "_embedded": {"custom_fields": [example]},
        },
    )


async def test_validation_error(kommo: httpx.AsyncClient) -> None:
    """amoCRM's "Справочник ошибок и ответов API", example "Пример ошибки валидации данных"
    (as quoted at https://toposhibok.ru/amocrm-kod-oshibki-204): the sandbox answers it exactly."""
    example = {
        "validation-errors": [
            {
                "request_id": "0",
                "errors": [
                    {
                        "code": "NotSupportedChoice",
                        "path": "custom_fields_values.0.field_id",
                        "detail": "The value you selected is not a valid choice.",
                    }
                ],
            }
        ],
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
    }

    response = await kommo.post(
        "/api/v4/leads",
        json=[{"custom_fields_values": [{"field_id": 1, "values": [{"value": "x"}]}]}],
    )

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == example


async def test_leads_list_with_contacts(kommo: httpx.AsyncClient) -> None:
    """https://developers.kommo.com/reference/leads-list (response parameters, with=contacts)."""
    lead = {
        "id": 1,
        "name": "",
        "price": 0,
        "responsible_user_id": 1,
        "group_id": 0,
        "status_id": 1,
        "pipeline_id": 1,
        "loss_reason_id": None,
        "created_by": 1,
        "updated_by": 1,
        "created_at": 1,
        "updated_at": 1,
        "closed_at": None,
        "closest_task_at": None,
        "is_deleted": False,
        "custom_fields_values": None,
        "score": None,
        "account_id": 1,
        "_links": LINK,
        "_embedded": {
            "tags": [{"id": 1, "name": "", "color": None}],
            "companies": [{"id": 1, "_links": LINK}],
            "contacts": [{"id": 1, "is_main": True, "_links": LINK}],
        },
    }
    example = {"_page": 1, "_links": LINK, "_embedded": {"leads": [lead]}}

    assert_shaped_like(
        await _json(await kommo.get("/api/v4/leads", params={"with": "contacts"})), example
    )


async def test_contacts_list(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/contacts-api (response example) and
    https://developers.kommo.com/reference/contacts-list (response parameters)."""
    contact = {
        "id": 406322,
        "name": "Sam",
        "first_name": "Sam",
        "last_name": "",
        "responsible_user_id": 8375357,
        "group_id": 0,
        "created_by": 8375357,
        "updated_by": 8375357,
        "created_at": 1686670710,
        "updated_at": 1686670710,
        "closest_task_at": None,
        "custom_fields_values": [
            {
                "field_id": 1,
                "field_name": "Phone",
                "field_code": "PHONE",
                "field_type": "multitext",
                "values": [{"value": "+1", "enum_id": 1, "enum_code": "WORK"}],
            }
        ],
        "account_id": 1,
        "_links": LINK,
        "_embedded": {"tags": [], "companies": [{"id": 1, "_links": LINK}]},
    }
    example = {"_page": 1, "_links": LINK, "_embedded": {"contacts": [contact]}}

    assert_shaped_like(await _json(await kommo.get("/api/v4/contacts")), example)
    with_leads = await _json(
        await kommo.get(f"/api/v4/contacts/{DEMO_CONTACT_ID}", params={"with": "leads"})
    )
    assert_shaped_like(with_leads, {"_embedded": {"leads": [{"id": 1, "_links": LINK}]}})


async def test_complex_leads(kommo: httpx.AsyncClient) -> None:
    """https://developers.kommo.com/reference/complex-leads (response example)."""
    example = [
        {
            "id": 9774766,
            "contact_id": 12117258,
            "company_id": 12117260,
            "request_id": ["1"],
            "merged": False,
        }
    ]

    body = await _json(
        await kommo.post(
            "/api/v4/leads/complex",
            json=[
                {
                    "name": "x",
                    "_embedded": {"contacts": [{"first_name": "A"}], "companies": [{"name": "B"}]},
                }
            ],
        )
    )

    assert_shaped_like(body, example)


async def test_tasks(kommo: httpx.AsyncClient) -> None:
    """https://developers.kommo.com/reference/tasks-list (response parameters, and the example
    request `filter[task_type]=2&filter[is_completed]=1&limit=2`)."""
    task = {
        "id": 1,
        "created_by": 1,
        "updated_by": 1,
        "created_at": 1,
        "updated_at": 1,
        "responsible_user_id": 1,
        "group_id": 0,
        "entity_id": 1,
        "entity_type": "leads",
        "is_completed": True,
        "task_type_id": 2,
        "text": "",
        "duration": 0,
        "complete_till": 1,
        "result": {"text": ""},
        "account_id": 1,
        "_links": LINK,
    }
    meeting = {
        "text": "Meet",
        "complete_till": 2_000_000_000,
        "task_type_id": 2,
        "entity_type": "leads",
        "entity_id": DEMO_LEAD_ID,
        "is_completed": True,
        "result": {"text": "Met"},
    }
    added = await _json(
        await kommo.post("/api/v4/tasks", json=[meeting, {**meeting, "task_type_id": 1}])
    )
    assert_shaped_like(
        added,
        {"_links": LINK, "_embedded": {"tasks": [{"id": 1, "request_id": "0", "_links": LINK}]}},
    )

    listed = await _json(
        await kommo.get(
            "/api/v4/tasks", params={"filter[task_type]": 2, "filter[is_completed]": 1, "limit": 2}
        )
    )

    assert_shaped_like(listed, {"_page": 1, "_links": LINK, "_embedded": {"tasks": [task]}})
    assert [t["task_type_id"] for t in listed["_embedded"]["tasks"]] == [2]


async def test_tasks_batch_edit(kommo: httpx.AsyncClient) -> None:
    """Kommo's "Edit tasks" response example, as transcribed at
    https://www.withone.ai/knowledge/kommo/conn_mod_def%3A%3AGJ4ulJ5ASVQ%3A%3AwjcfByxkRleFlWzHZbmmXQ"""
    example = {
        "_links": LINK,
        "_embedded": {
            "tasks": [{"id": 4745251, "updated_at": 1588760725, "request_id": "0", "_links": LINK}]
        },
    }
    added = await _json(
        await kommo.post("/api/v4/tasks", json=[{"text": "Call", "complete_till": 1}])
    )
    task_id = added["_embedded"]["tasks"][0]["id"]

    body = await _json(
        await kommo.patch("/api/v4/tasks", json=[{"id": task_id, "text": "Call again"}])
    )

    assert_shaped_like(body, example)


async def test_webhooks_list(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/webhooks-2 ("List of webhooks", example)."""
    webhook = {
        "id": 839656,
        "destination": "https://webhook-uri.com",
        "created_at": 1575539157,
        "updated_at": 1575539157,
        "account_id": 321321,
        "created_by": 123123,
        "sort": 1,
        "disabled": False,
        "settings": ["add_task"],
    }
    added = await _json(
        await kommo.post(
            "/api/v4/webhooks",
            json={"destination": "https://webhook-uri.com", "settings": ["add_task"]},
        )
    )

    listed = await _json(await kommo.get("/api/v4/webhooks"))

    assert_shaped_like(added, webhook)
    assert_shaped_like(listed, {"_total_items": 2, "_embedded": {"webhooks": [webhook]}})


async def test_tags(kommo: httpx.AsyncClient) -> None:
    """https://kommo.com/developers/content/api_v4/tags ("List of entity tags" example, with its
    `filter[id][]` request; "Adding tags for a particular entity type")."""
    added = await _json(
        await kommo.post(
            "/api/v4/leads/tags",
            json=[{"name": "Tag 1"}, {"name": "Tag 2", "request_id": "my_request_id"}],
        )
    )
    assert_shaped_like(
        added,
        {
            "_total_items": 2,
            "_embedded": {"tags": [{"id": 263807, "name": "Tag 1", "request_id": "0"}]},
        },
    )
    assert [t["request_id"] for t in added["_embedded"]["tags"]] == ["0", "my_request_id"]
    ids = [("filter[id][]", t["id"]) for t in added["_embedded"]["tags"]]

    listed = await _json(await kommo.get("/api/v4/leads/tags", params=ids))

    assert_shaped_like(
        listed, {"_page": 1, "_links": LINK, "_embedded": {"tags": [{"id": 2707, "name": "Tag"}]}}
    )
    assert len(listed["_embedded"]["tags"]) == 2


async def test_events(kommo: httpx.AsyncClient) -> None:
    """https://developers.kommo.com/reference/events-list (response parameters: id is a
    string, entity_type singular, value_after/value_before arrays)."""
    event = {
        "id": "01pz58t6p04vdgqjg7b8j4x3xx",
        "type": "lead_status_changed",
        "entity_id": 1,
        "entity_type": "lead",
        "created_by": 1,
        "created_at": 1,
        "value_after": [{"lead_status": {"id": 142, "pipeline_id": 1}}],
        "value_before": [{"lead_status": {"id": 1, "pipeline_id": 1}}],
        "account_id": 1,
        "_links": LINK,
    }
    await kommo.patch(f"/api/v4/leads/{DEMO_LEAD_ID}", json={"status_id": 142})

    body = await _json(
        await kommo.get("/api/v4/events", params={"filter[type][]": "lead_status_changed"})
    )

    assert_shaped_like(body, {"_page": 1, "_links": LINK, "_embedded": {"events": [event]}})


async def test_users(kommo: httpx.AsyncClient) -> None:
    """https://developers.kommo.com/reference/users-list (response parameters); the list's
    envelope as in Kommo's example (`_total_items`, `_page`, `_page_count`)."""
    crud = {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}
    user = {
        "id": 123123,
        "name": "Example user",
        "email": "user@example.com",
        "lang": "en",
        "rights": {
            "leads": crud,
            "contacts": crud,
            "companies": crud,
            "tasks": {"edit": "A", "delete": "A"},
            "mail_access": False,
            "catalog_access": False,
            "is_admin": False,
            "is_free": False,
            "is_active": True,
            "group_id": None,
            "role_id": None,
        },
        "_links": LINK,
    }

    body = await _json(await kommo.get("/api/v4/users"))

    assert_shaped_like(
        body,
        {
            "_total_items": 2,
            "_page": 1,
            "_page_count": 1,
            "_links": LINK,
            "_embedded": {"users": [user]},
        },
    )


async def test_notes_and_the_documented_call_logging_request(kommo: httpx.AsyncClient) -> None:
    """The request body of https://www.kommo.com/developers/content/telephony/call_logging/
    is accepted as is; the call becomes a `call_in` note with the params listed at
    https://developers.kommo.com/reference/notes-types, as does a service message."""
    await kommo.post(
        "/api/v4/contacts",
        json=[
            {
                "name": "Caller",
                "custom_fields_values": [
                    {"field_code": "PHONE", "values": [{"value": "18305803077"}]}
                ],
            }
        ],
    )
    call = {
        "uniq": "394427aaf821879e29efbc4eb78er22171530",
        "phone": "18305803077",
        "source": "kommo_custom_widget",
        "created_at": 1662544423,
        "created_by": 8375357,
        "duration": 20,
        "call_status": 2,
        "direction": "inbound",
        "link": "https://file-examples.com/wp-content/uploads/2017/11/file_example_MP3_700KB.mp3",
    }

    logged = await _json(await kommo.post("/api/v4/calls", json=[call]))
    await kommo.post(
        "/api/v4/leads/notes",
        json=[
            {
                "entity_id": DEMO_LEAD_ID,
                "note_type": "service_message",
                "params": {"service": "Example service", "text": "Note text"},
            }
        ],
    )

    [row] = logged["_embedded"]["calls"]
    assert row["entity_type"] == "contact"
    call_note = await _json(await kommo.get(f"/api/v4/contacts/{row['entity_id']}/notes"))
    [note] = call_note["_embedded"]["notes"]
    assert note["note_type"] == "call_in"
    assert_shaped_like(
        note["params"],
        {
            "uniq": "XXXXX",
            "duration": 60,
            "source": "Twilio",
            "link": "https://example.com",
            "phone": "+14155551234",
        },
    )
    service = await _json(await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}/notes"))
    assert service["_embedded"]["notes"][0]["params"] == {
        "service": "Example service",
        "text": "Note text",
    }
