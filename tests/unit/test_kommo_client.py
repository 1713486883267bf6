"""KommoClient against the Kommo sandbox over real HTTP, and its error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from agent_platform.crm.kommo.client import KommoClient, KommoNote
from agent_platform.crm.kommo.errors import (
    KommoAuthError,
    KommoError,
    KommoNotFound,
    KommoRateLimited,
    KommoUnavailable,
    KommoValidationError,
)
from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.crm.sandbox.store import DEMO_CONTACT_ID, DEMO_LEAD_ID
from tests.support.servers import serve_app

TOKEN = "sandbox-access-token"


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with serve_app(create_sandbox_app(access_token=TOKEN)) as base_url:
        yield base_url


@pytest.fixture
async def http(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        (await http.post(f"{sandbox_url}/sandbox/reset")).raise_for_status()
        yield http


@pytest.fixture
def kommo(sandbox_url: str, http: httpx.AsyncClient) -> KommoClient:
    return KommoClient(sandbox_url, TOKEN, http)


async def test_added_note_is_listed_and_stored(
    kommo: KommoClient, http: httpx.AsyncClient, sandbox_url: str
) -> None:
    note_id = await kommo.add_note("leads", DEMO_LEAD_ID, "Lead asked for a callback")

    notes = await kommo.list_notes("leads", DEMO_LEAD_ID)

    assert notes == [
        KommoNote(
            id=note_id,
            entity_id=DEMO_LEAD_ID,
            note_type="common",
            text="Lead asked for a callback",
            created_at=notes[0].created_at,
        )
    ]
    assert notes[0].created_at > 0
    stored = (await http.get(f"{sandbox_url}/sandbox/notes")).json()["notes"]
    assert [(n["id"], n["entity_type"], n["params"]["text"]) for n in stored] == [
        (note_id, "leads", "Lead asked for a callback")
    ]


async def test_notes_are_listed_newest_first_up_to_the_limit(kommo: KommoClient) -> None:
    ids = [await kommo.add_note("contacts", DEMO_CONTACT_ID, f"note {n}") for n in range(3)]

    notes = await kommo.list_notes("contacts", DEMO_CONTACT_ID, limit=2)

    assert [note.id for note in notes] == [ids[2], ids[1]]
    assert [note.text for note in notes] == ["note 2", "note 1"]


async def test_notes_stay_with_their_entity(kommo: KommoClient) -> None:
    await kommo.add_note("contacts", DEMO_CONTACT_ID, "about the contact")

    assert await kommo.list_notes("leads", DEMO_LEAD_ID) == []


async def test_no_notes_is_kommos_204_and_an_empty_list(
    kommo: KommoClient, http: httpx.AsyncClient, sandbox_url: str
) -> None:
    raw = await http.get(
        f"{sandbox_url}/api/v4/leads/{DEMO_LEAD_ID}/notes",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert raw.status_code == 204

    assert await kommo.list_notes("leads", DEMO_LEAD_ID) == []


async def test_get_lead_returns_the_demo_lead(kommo: KommoClient) -> None:
    lead = await kommo.get_lead(DEMO_LEAD_ID)

    assert lead["id"] == DEMO_LEAD_ID
    assert lead["name"] == "Demo lead"
    assert lead["_links"]["self"]["href"].endswith(f"/api/v4/leads/{DEMO_LEAD_ID}")


async def test_unknown_lead_is_not_found(kommo: KommoClient) -> None:
    with pytest.raises(KommoNotFound):
        await kommo.get_lead(999_999)


async def test_wrong_token_is_an_auth_error_that_does_not_leak_the_token(
    sandbox_url: str, http: httpx.AsyncClient
) -> None:
    wrong_token = "not-the-sandbox-token"
    kommo = KommoClient(sandbox_url, wrong_token, http)

    with pytest.raises(KommoAuthError) as raised:
        await kommo.add_note("leads", DEMO_LEAD_ID, "never written")

    assert raised.value.status == 401
    assert not raised.value.retryable
    assert wrong_token not in str(raised.value)
    assert wrong_token not in repr(kommo)
    assert (await http.get(f"{sandbox_url}/sandbox/notes")).json() == {"notes": []}


async def test_empty_text_is_a_validation_error_with_kommos_details(kommo: KommoClient) -> None:
    with pytest.raises(KommoValidationError) as raised:
        await kommo.add_note("leads", DEMO_LEAD_ID, "")

    assert raised.value.status == 400
    [item] = raised.value.validation_errors
    assert item["request_id"] == "0"
    assert [error["path"] for error in item["errors"]] == ["params.text"]


async def test_note_on_a_missing_entity_is_a_validation_error(kommo: KommoClient) -> None:
    with pytest.raises(KommoValidationError) as raised:
        await kommo.add_note("leads", 999_999, "orphan")

    assert raised.value.validation_errors[0]["errors"][0]["path"] == "entity_id"


async def test_connection_failure_is_retryable_unavailable() -> None:
    async with httpx.AsyncClient() as http:
        # Port 1 is reserved and nothing listens there: the connection is refused at once.
        kommo = KommoClient("http://127.0.0.1:1", TOKEN, http)
        with pytest.raises(KommoUnavailable) as raised:
            await kommo.list_notes("leads", DEMO_LEAD_ID)

    assert raised.value.status is None
    assert raised.value.retryable
    assert TOKEN not in str(raised.value)


def _client_answering(response: httpx.Response) -> tuple[KommoClient, httpx.AsyncClient]:
    """Responses the sandbox never gives (429, 5xx, odd bodies) come from a mock transport."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return KommoClient("https://example.kommo.com", TOKEN, http), http


@pytest.mark.parametrize(
    ("retry_after", "expected"), [("7", 7.0), (None, None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)]
)
async def test_429_is_rate_limited_with_retry_after(
    retry_after: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    kommo, http = _client_answering(httpx.Response(429, headers=headers))

    async with http:
        with pytest.raises(KommoRateLimited) as raised:
            await kommo.get_lead(DEMO_LEAD_ID)

    assert raised.value.retry_after == expected
    assert raised.value.retryable


async def test_5xx_is_retryable_unavailable() -> None:
    kommo, http = _client_answering(httpx.Response(503, text="<html>Bad gateway</html>"))

    async with http:
        with pytest.raises(KommoUnavailable) as raised:
            await kommo.add_note("leads", DEMO_LEAD_ID, "hello")

    assert raised.value.status == 503
    assert raised.value.detail == "Service Unavailable"


async def test_success_with_an_unexpected_body_is_a_kommo_error() -> None:
    kommo, http = _client_answering(httpx.Response(200, json={"_embedded": {}}))

    async with http:
        with pytest.raises(KommoError, match="unexpected response body"):
            await kommo.add_note("leads", DEMO_LEAD_ID, "hello")
