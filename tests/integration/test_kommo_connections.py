"""Connecting Kommo accounts through the REST API, against the Kommo sandbox over real HTTP:
OAuth start → consent → callback, long-lived tokens, the listing, our webhook in the account,
reply settings, disconnecting, the uninstall hook.

Every refusal is a 4xx with the contract's error body, and writes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select, text

from agent_platform.agent.models import Agent
from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.kommo.connections import sign_state
from agent_platform.crm.models import InboxEvent
from agent_platform.crm.sandbox.chats import CHANNEL_BOT_ID, CHANNEL_SCOPE_ID, CHANNEL_SECRET
from agent_platform.crm.sandbox.store import ACCOUNT_ID, DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services, open_services
from tests.support.factories import message_form
from tests.support.jobs import run_queued_jobs
from tests.support.kommo_oauth import (
    CALLBACK_PATH,
    CLIENT_ID,
    CLIENT_SECRET,
    connection_count,
    connection_row,
    consent,
    create_organization,
    grants,
    oauth_overrides,
    register_integration,
    set_token_expiry,
    switch_faults,
)
from tests.support.sandbox_webhooks import sandbox_webhooks
from tests.support.servers import serve_app
from tests.support.worker import running_worker

DEADLINE_SECONDS = 30.0
START_PATH = "/api/v1/integrations/kommo/oauth/start"
LIST_PATH = "/api/v1/integrations/kommo/connections"
ONE_PATH = LIST_PATH + "/{id}"
LONG_LIVED_PATH = "/api/v1/integrations/kommo/long-lived-token"
UNINSTALL_PATH = "/webhooks/kommo/uninstall"


@pytest.fixture
def oauth_settings(settings: Settings, sandbox: tuple[str, str]) -> Settings:
    register_integration(sandbox[0])
    return settings.model_copy(update=oauth_overrides(sandbox[0]))


@pytest.fixture
async def oauth_services(oauth_settings: Settings) -> AsyncIterator[Services]:
    assert oauth_settings.database_url
    async with open_services(oauth_settings, oauth_settings.database_url) as opened:
        yield opened


@pytest.fixture
def platform(oauth_settings: Settings) -> Iterator[str]:
    assert oauth_settings.database_url
    with serve_app(create_app(oauth_settings, oauth_settings.database_url)) as url:
        yield url


@pytest.fixture
async def api(platform: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform) as client:
        yield client


@pytest.fixture
async def organization(oauth_services: Services) -> tuple[uuid.UUID, dict[str, str]]:
    organization_id, key = await create_organization(oauth_services)
    return organization_id, {"Authorization": f"Bearer {key}"}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id", "timestamp"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


async def start_and_consent(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> tuple[dict[str, Any], dict[str, str]]:
    started = await api.get(START_PATH, headers=headers)
    assert started.status_code == 200, started.text
    return started.json(), consent(started.json()["authorize_url"])


async def test_oauth_connects_an_account_and_keeps_its_tokens_encrypted(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    organization_id, headers = organization
    started, query = await start_and_consent(api, headers)

    authorize = urlsplit(started["authorize_url"])
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{sandbox[0]}/oauth"
    assert parse_qs(authorize.query) == {
        "client_id": [CLIENT_ID],
        "state": [started["state"]],
        "mode": ["post_message"],
    }
    assert query["state"] == started["state"]
    assert query["referer"] == urlsplit(sandbox[0]).netloc

    callback = await api.get(CALLBACK_PATH, params=query)

    assert callback.status_code == 200, callback.text
    connected = callback.json()
    assert connected["status"] == "active"
    assert connected["auth"] == "oauth"
    assert connected["account_id"] == ACCOUNT_ID
    assert connected["base_url"] == sandbox[0]
    assert (connected["access_token"], connected["refresh_token"]) == ("********", "********")
    assert connected["token_expires_at"] is not None
    assert [g["outcome"] for g in grants(sandbox[0], "authorization_code")] == ["issued"]

    row = await connection_row(oauth_services, uuid.UUID(connected["id"]))
    assert row.organization_id == organization_id
    assert row.access_token_encrypted
    assert row.refresh_token_encrypted
    access_token = oauth_services.secrets.decrypt(row.access_token_encrypted)
    refresh_token = oauth_services.secrets.decrypt(row.refresh_token_encrypted)
    # Stored encrypted, and what is stored is a token the account accepts.
    assert access_token not in row.access_token_encrypted
    async with httpx.AsyncClient() as kommo:
        account = await kommo.get(
            f"{sandbox[0]}/api/v4/account", headers={"Authorization": f"Bearer {access_token}"}
        )
    assert account.status_code == 200

    listed = await api.get(LIST_PATH, headers=headers)
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["items"]] == [connected["id"]]
    for secret in (access_token, refresh_token, row.access_token_encrypted):
        assert secret not in listed.text
        assert secret not in callback.text


async def test_connecting_the_same_account_again_updates_its_connection(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
) -> None:
    _, headers = organization
    first = (await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])).json()
    before = await connection_row(oauth_services, uuid.UUID(first["id"]))

    second = await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])

    assert second.json()["id"] == first["id"]
    assert await connection_count(oauth_services) == 1
    after = await connection_row(oauth_services, uuid.UUID(first["id"]))
    assert after.access_token_encrypted != before.access_token_encrypted


def _tamper(state: str) -> str:
    payload, _, signature = state.partition(".")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    return f"{flipped}.{signature}"


@pytest.mark.parametrize(
    "bad_state",
    [
        pytest.param(lambda state, org: _tamper(state), id="payload-changed"),
        pytest.param(lambda state, org: state[:-3] + "abc", id="signature-changed"),
        pytest.param(
            lambda state, org: sign_state("another-platforms-secret-key-0123456789", org),
            id="signed-by-another-key",
        ),
        pytest.param(
            lambda state, org: (
                sign_state("unused", org, now=0).partition(".")[0] + "." + state.partition(".")[2]
            ),
            id="expired-payload-old-signature",
        ),
        pytest.param(lambda state, org: "not-a-state", id="garbage"),
    ],
)
async def test_a_state_not_issued_by_us_is_400_and_nothing_is_exchanged(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
    bad_state: Any,
) -> None:
    organization_id, headers = organization
    started, query = await start_and_consent(api, headers)

    response = await api.get(
        CALLBACK_PATH, params={**query, "state": bad_state(started["state"], organization_id)}
    )

    assert_error(response, 400, "invalid_state")
    assert await connection_count(oauth_services) == 0
    assert grants(sandbox[0]) == []  # the code was never sent to Kommo


async def test_an_expired_state_is_400(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_settings: Settings,
    oauth_services: Services,
) -> None:
    organization_id, headers = organization
    _, query = await start_and_consent(api, headers)
    assert oauth_settings.secret_key is not None
    expired = sign_state(
        oauth_settings.secret_key.get_secret_value(), organization_id, now=time.time() - 3600
    )

    response = await api.get(CALLBACK_PATH, params={**query, "state": expired})

    assert "expired" in assert_error(response, 400, "invalid_state")["error"]["message"]
    assert await connection_count(oauth_services) == 0


@pytest.mark.parametrize(
    "referer", ["evil.example.com", "acme.kommo.com.evil.com", "127.0.0.1:1", "a/b"]
)
async def test_a_referer_that_is_no_kommo_account_is_400_and_gets_no_secret(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
    referer: str,
) -> None:
    _, headers = organization
    _, query = await start_and_consent(api, headers)

    response = await api.get(CALLBACK_PATH, params={**query, "referer": referer})

    assert_error(response, 400, "invalid_kommo_domain")
    assert await connection_count(oauth_services) == 0
    assert grants(sandbox[0]) == []


async def test_a_code_used_twice_is_refused_the_second_time(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
) -> None:
    _, headers = organization
    _, query = await start_and_consent(api, headers)
    assert (await api.get(CALLBACK_PATH, params=query)).status_code == 200
    before = await connection_row(oauth_services, (await _only_connection_id(api, headers)))

    again = await api.get(CALLBACK_PATH, params=query)

    body = assert_error(again, 400, "kommo_refused")
    assert body["error"]["details"] == {"kommo": "Authorization code has been revoked"}
    after = await connection_row(oauth_services, before.id)
    assert after.access_token_encrypted == before.access_token_encrypted


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"code": None}, 400, "authorization_declined"),
        ({"referer": None}, 400, "authorization_declined"),
        ({"error": "access_denied", "code": None}, 400, "authorization_declined"),
        ({"state": None}, 422, "validation_error"),
        ({"state": ""}, 422, "validation_error"),
        ({"state": "x" * 2001}, 422, "validation_error"),
    ],
)
async def test_a_callback_missing_its_parameters_is_a_4xx(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
    change: dict[str, str | None],
    status: int,
    code: str,
) -> None:
    _, headers = organization
    _, query = await start_and_consent(api, headers)
    params = {k: v for k, v in ({**query, **change}).items() if v is not None}

    assert_error(await api.get(CALLBACK_PATH, params=params), status, code)
    assert await connection_count(oauth_services) == 0
    assert grants(sandbox[0]) == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", START_PATH),
        ("GET", LIST_PATH),
        ("POST", LONG_LIVED_PATH),
        ("PATCH", ONE_PATH.format(id=uuid.uuid4())),
        ("DELETE", ONE_PATH.format(id=uuid.uuid4())),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer ap_nope_nope", "Bearer not-a-key"])
async def test_the_organization_endpoints_need_an_api_key(
    api: httpx.AsyncClient, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await api.request(
        method, path, headers=headers, json={"domain": "acme.kommo.com", "access_token": "x" * 30}
    )

    assert_error(response, 401, "unauthorized")


async def test_start_without_an_integration_configured_says_so(
    settings: Settings, oauth_services: Services
) -> None:
    assert settings.database_url
    assert settings.kommo_client_id is None
    _organization_id, key = await create_organization(oauth_services)
    with serve_app(create_app(settings, settings.database_url)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get(START_PATH, headers={"Authorization": f"Bearer {key}"})
            uninstall = await client.get(
                UNINSTALL_PATH, params={"account_id": "1", "client_uuid": "x", "signature": "y"}
            )

    assert_error(response, 503, "kommo_oauth_not_configured")
    assert_error(uninstall, 503, "kommo_oauth_not_configured")


async def test_start_refuses_an_unknown_mode(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    response = await api.get(START_PATH, params={"mode": "redirect"}, headers=organization[1])

    assert_error(response, 422, "validation_error")


# --- long-lived tokens -------------------------------------------------------------------


async def test_a_long_lived_token_connects_without_refresh(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    response = await api.post(
        LONG_LIVED_PATH,
        headers=headers,
        json={"domain": urlsplit(sandbox[0]).netloc, "access_token": sandbox[1]},
    )

    assert response.status_code == 201, response.text
    connected = response.json()
    assert (connected["auth"], connected["status"]) == ("long_lived", "active")
    assert (connected["access_token"], connected["refresh_token"]) == ("********", None)
    assert connected["account_id"] == ACCOUNT_ID
    assert sandbox[1] not in response.text
    row = await connection_row(oauth_services, uuid.UUID(connected["id"]))
    assert row.access_token_encrypted is not None
    assert oauth_services.secrets.decrypt(row.access_token_encrypted) == sandbox[1]
    assert row.refresh_token_encrypted is None
    assert row.token_expires_at is None


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"domain": "SANDBOX", "access_token": "a-token-kommo-does-not-know"},
            400,
            "kommo_refused",
        ),
        ({"domain": "evil.example.com", "access_token": "x" * 30}, 400, "invalid_kommo_domain"),
        ({"domain": "acme.kommo.com"}, 422, "validation_error"),
        ({"access_token": "x" * 30}, 422, "validation_error"),
        ({"domain": "acme.kommo.com", "access_token": "short"}, 422, "validation_error"),
        (
            {"domain": "acme.kommo.com", "access_token": "x" * 30, "refresh_token": "y"},
            422,
            "validation_error",
        ),
        (
            {"domain": "acme.kommo.com", "access_token": 12345678901234567890},
            422,
            "validation_error",
        ),
        (
            {"domain": "acme.kommo.com", "access_token": "x" * 30, "expires_at": "soon"},
            422,
            "validation_error",
        ),
        ([], 422, "validation_error"),
    ],
)
async def test_a_bad_long_lived_token_request_is_a_4xx_and_writes_nothing(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
    body: Any,
    status: int,
    code: str,
) -> None:
    if isinstance(body, dict) and body.get("domain") == "SANDBOX":
        body = {**body, "domain": urlsplit(sandbox[0]).netloc}

    response = await api.post(LONG_LIVED_PATH, headers=organization[1], json=body)

    assert_error(response, status, code)
    assert await connection_count(oauth_services) == 0


async def test_a_malformed_json_body_is_a_422(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    response = await api.post(
        LONG_LIVED_PATH,
        headers={**organization[1], "Content-Type": "application/json"},
        content=b"{not json",
    )

    assert_error(response, 422, "validation_error")


# --- listing -----------------------------------------------------------------------------


async def test_each_organization_lists_only_its_own_connections(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
) -> None:
    _, headers = organization
    _, other_headers = await _other_organization(oauth_services)
    await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])

    mine = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    theirs = (await api.get(LIST_PATH, headers=other_headers)).json()["items"]

    assert len(mine) == 1
    assert theirs == []


# --- the uninstall hook ------------------------------------------------------------------


def uninstall_signature(account_id: int | str, client_id: str = CLIENT_ID) -> str:
    message = f"{client_id}|{account_id}".encode()
    return hmac.new(CLIENT_SECRET.encode(), message, hashlib.sha256).hexdigest()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_signed_uninstall_disables_the_accounts_oauth_connections(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    method: str,
) -> None:
    _, headers = organization
    await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])
    params = {
        "account_id": str(ACCOUNT_ID),
        "client_uuid": CLIENT_ID,
        "signature": uninstall_signature(ACCOUNT_ID),
    }

    if method == "GET":  # as Kommo sends it
        response = await api.get(UNINSTALL_PATH, params=params)
    else:
        response = await api.post(UNINSTALL_PATH, data=params)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "disabled": 1}
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["status"] == "disabled"
    assert "uninstalled" in listed["status_reason"]
    assert (listed["access_token"], listed["refresh_token"]) == (None, None)


@pytest.mark.parametrize(
    "change",
    [
        {"signature": "0" * 64},
        {"signature": uninstall_signature(ACCOUNT_ID + 1)},
        {
            "client_uuid": "someone-else",
            "signature": uninstall_signature(ACCOUNT_ID, "someone-else"),
        },
        {"account_id": str(ACCOUNT_ID + 1)},
    ],
)
async def test_an_uninstall_with_a_wrong_signature_is_401_and_changes_nothing(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    change: dict[str, str],
) -> None:
    _, headers = organization
    await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])
    params = {
        "account_id": str(ACCOUNT_ID),
        "client_uuid": CLIENT_ID,
        "signature": uninstall_signature(ACCOUNT_ID),
        **change,
    }

    response = await api.get(UNINSTALL_PATH, params=params)

    assert_error(response, 401, "invalid_signature")
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["status"] == "active"


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"account_id": str(ACCOUNT_ID), "client_uuid": CLIENT_ID},
        {"account_id": "", "client_uuid": CLIENT_ID, "signature": "x"},
    ],
)
async def test_an_uninstall_missing_parameters_is_400(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    assert_error(await api.get(UNINSTALL_PATH, params=params), 400, "invalid_uninstall_hook")


async def test_a_signed_uninstall_with_a_non_numeric_account_is_400(
    api: httpx.AsyncClient,
) -> None:
    params = {
        "account_id": "abc",
        "client_uuid": CLIENT_ID,
        "signature": uninstall_signature("abc"),
    }

    assert_error(await api.get(UNINSTALL_PATH, params=params), 400, "invalid_uninstall_hook")


async def test_uninstall_leaves_long_lived_connections_alone(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    domain = urlsplit(sandbox[0]).netloc
    await api.post(
        LONG_LIVED_PATH, headers=headers, json={"domain": domain, "access_token": sandbox[1]}
    )
    params = {
        "account_id": str(ACCOUNT_ID),
        "client_uuid": CLIENT_ID,
        "signature": uninstall_signature(ACCOUNT_ID),
    }

    response = await api.get(UNINSTALL_PATH, params=params)

    assert response.json()["disabled"] == 0
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["status"] == "active"


# --- our webhook in the account ---------------------------------------------------------

# Kommo's names of every event the platform reads ("Webhooks" in Kommo's API reference).
EXPECTED_WEBHOOK_SETTINGS = {
    *(f"{a}_lead" for a in ("add", "update", "delete", "restore", "status", "responsible")),
    "note_lead",
    *(f"{a}_contact" for a in ("add", "update", "delete", "restore", "responsible", "note")),
    *(f"{a}_company" for a in ("add", "update", "delete", "restore", "responsible", "note")),
    *(f"{a}_customer" for a in ("add", "update", "delete", "responsible", "note")),
    *(f"{a}_task" for a in ("add", "update", "delete", "responsible")),
    "add_talk",
    "update_talk",
    "add_message",
    "add_outgoing_message",
    *(f"{a}_unsorted" for a in ("add", "update", "delete")),
}


async def test_connecting_by_oauth_subscribes_our_webhook_in_the_account(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    oauth_settings: Settings,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    connected = await connect_by_callback(api, headers)
    assert connected["webhook"]["status"] == "pending"
    assert await sandbox_webhooks(*sandbox) == []  # not from inside the request

    await run_queued_jobs(oauth_services)

    token = (await connection_row(oauth_services, uuid.UUID(connected["id"]))).webhook_token
    destination = f"{oauth_settings.public_base_url}/webhooks/kommo/{token}"
    [webhook] = await sandbox_webhooks(*sandbox)
    assert webhook["destination"] == destination
    assert set(webhook["settings"]) == EXPECTED_WEBHOOK_SETTINGS
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["webhook"]["status"] == "subscribed"
    assert listed["webhook"]["destination"] == destination
    assert listed["webhook"]["subscribed_at"] is not None
    assert listed["webhook"]["error"] is None


async def test_a_long_lived_token_subscribes_our_webhook_too(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    response = await api.post(
        LONG_LIVED_PATH,
        headers=headers,
        json={"domain": urlsplit(sandbox[0]).netloc, "access_token": sandbox[1]},
    )
    assert response.status_code == 201, response.text

    await run_queued_jobs(oauth_services)

    [webhook] = await sandbox_webhooks(*sandbox)
    assert webhook["destination"].endswith(
        (await connection_row(oauth_services, uuid.UUID(response.json()["id"]))).webhook_token
    )
    assert set(webhook["settings"]) == EXPECTED_WEBHOOK_SETTINGS


async def test_connecting_again_keeps_one_webhook(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    [first] = await sandbox_webhooks(*sandbox)

    await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)

    [again] = await sandbox_webhooks(*sandbox)
    assert (again["id"], again["destination"]) == (first["id"], first["destination"])


async def test_a_subscription_kommo_fails_is_shown_and_tried_again(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    connected = await connect_by_callback(api, headers)
    switch_faults(sandbox[0], errors_5xx=1)

    await run_queued_jobs(oauth_services)

    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["webhook"]["status"] == "failed"
    assert "could not be reached" in listed["webhook"]["error"]
    assert "trying again" in listed["webhook"]["error"]
    assert await sandbox_webhooks(*sandbox) == []
    async with transaction(oauth_services.sessions) as session:
        job = (await session.execute(text("SELECT status, attempts FROM procrastinate_jobs"))).one()
    assert tuple(job) == ("todo", 1)  # back in the queue, for later

    await wait_for_subscription(oauth_services, uuid.UUID(connected["id"]))

    assert len(await sandbox_webhooks(*sandbox)) == 1
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert (listed["webhook"]["status"], listed["webhook"]["error"]) == ("subscribed", None)


# --- reply settings ----------------------------------------------------------------------


async def test_choosing_the_chats_channel_keeps_its_secret_encrypted_and_masked(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    organization_id, headers = organization
    connected = await connect_by_callback(api, headers)
    agent_id = await add_agent(oauth_services, organization_id)

    response = await api.patch(
        ONE_PATH.format(id=connected["id"]),
        headers=headers,
        json={
            "reply_channel": "chats",
            "chats_scope_id": CHANNEL_SCOPE_ID,
            "chats_secret": CHANNEL_SECRET,
            "chats_bot_id": CHANNEL_BOT_ID,
            "chats_api_url": sandbox[0],
            "agent_id": str(agent_id),
        },
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["reply_channel"] == "chats"
    assert (changed["chats_scope_id"], changed["chats_bot_id"]) == (
        CHANNEL_SCOPE_ID,
        CHANNEL_BOT_ID,
    )
    assert (changed["chats_secret"], changed["chats_api_url"]) == ("********", sandbox[0])
    assert changed["agent_id"] == str(agent_id)
    listed = await api.get(LIST_PATH, headers=headers)
    assert listed.json()["items"][0]["chats_secret"] == "********"
    assert listed.json()["items"][0]["reply_channel"] == "chats"
    row = await connection_row(oauth_services, uuid.UUID(connected["id"]))
    assert row.chats_secret_encrypted is not None
    assert oauth_services.secrets.decrypt(row.chats_secret_encrypted) == CHANNEL_SECRET
    for answer in (response.text, listed.text):
        assert CHANNEL_SECRET not in answer
        assert row.chats_secret_encrypted not in answer


async def test_a_change_keeps_what_it_does_not_name_and_null_clears(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = organization
    path = ONE_PATH.format(id=(await connect_by_callback(api, headers))["id"])
    await api.patch(path, headers=headers, json=CHATS_CHANNEL)

    back_to_notes = await api.patch(path, headers=headers, json={"reply_channel": "note"})
    cleared = await api.patch(path, headers=headers, json={"chats_secret": None})

    assert back_to_notes.json()["reply_channel"] == "note"
    assert back_to_notes.json()["chats_secret"] == "********"
    assert back_to_notes.json()["chats_scope_id"] == CHANNEL_SCOPE_ID
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["chats_secret"], cleared.json()["chats_scope_id"]) == (
        None,
        CHANNEL_SCOPE_ID,
    )


CHATS_CHANNEL = {
    "reply_channel": "chats",
    "chats_scope_id": CHANNEL_SCOPE_ID,
    "chats_secret": CHANNEL_SECRET,
    "chats_bot_id": CHANNEL_BOT_ID,
}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reply_channel": "sms"}, 422, "validation_error"),
        ({"reply_channel": None}, 422, "validation_error"),
        ({"reply_channel": "chats"}, 400, "reply_channel_incomplete"),
        (
            {"reply_channel": "chats", "chats_scope_id": "scope", "chats_bot_id": "bot"},
            400,
            "reply_channel_incomplete",
        ),
        ({**CHATS_CHANNEL, "chats_secret": ""}, 422, "validation_error"),
        ({**CHATS_CHANNEL, "chats_api_url": "ftp://amojo.kommo.com"}, 422, "validation_error"),
        ({**CHATS_CHANNEL, "chats_scope_id": "x" * 256}, 422, "validation_error"),
        ({"agent_id": "not-a-uuid"}, 422, "validation_error"),
        ({"agent_id": "UNKNOWN"}, 404, "not_found"),
        ({"agent_id": "ANOTHER_ORGANIZATIONS"}, 404, "not_found"),
        ({"agent_id": "ARCHIVED"}, 404, "not_found"),
        ({"reply_channel": "note", "webhook_token": "mine-now"}, 422, "validation_error"),
        ([], 422, "validation_error"),
    ],
)
async def test_a_bad_change_is_a_4xx_and_changes_nothing(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    body: Any,
    status: int,
    code: str,
) -> None:
    _, headers = organization
    path = ONE_PATH.format(id=(await connect_by_callback(api, headers))["id"])
    if isinstance(body, dict) and body.get("agent_id") == "UNKNOWN":
        body = {"agent_id": str(uuid.uuid4())}
    if isinstance(body, dict) and body.get("agent_id") == "ANOTHER_ORGANIZATIONS":
        other_organization_id, _ = await _other_organization(oauth_services)
        body = {"agent_id": str(await add_agent(oauth_services, other_organization_id))}
    if isinstance(body, dict) and body.get("agent_id") == "ARCHIVED":
        archived = await add_agent(oauth_services, organization[0], status="archived")
        body = {"agent_id": str(archived)}
    before = (await api.get(LIST_PATH, headers=headers)).json()

    response = await api.patch(path, headers=headers, json=body)

    assert_error(response, status, code)
    assert CHANNEL_SECRET not in response.text
    assert (await api.get(LIST_PATH, headers=headers)).json() == before


async def test_clearing_the_secret_of_the_chats_channel_in_use_is_refused(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = organization
    path = ONE_PATH.format(id=(await connect_by_callback(api, headers))["id"])
    assert (await api.patch(path, headers=headers, json=CHATS_CHANNEL)).status_code == 200

    response = await api.patch(path, headers=headers, json={"chats_secret": None})

    body = assert_error(response, 400, "reply_channel_incomplete")
    assert body["error"]["details"] == [
        {"path": "chats_secret", "message": "Required for the chats reply channel"}
    ]
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["chats_secret"] == "********"


# --- disconnecting -----------------------------------------------------------------------


async def test_disconnecting_removes_our_webhook_forgets_the_tokens_and_keeps_history(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    connected = await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    row = await connection_row(oauth_services, uuid.UUID(connected["id"]))
    received = await api.post(
        f"/webhooks/kommo/{row.webhook_token}",
        data=message_form("before-disconnect", "Hello?", lead_id=DEMO_LEAD_ID),
    )
    assert received.status_code == 200, received.text

    response = await api.delete(ONE_PATH.format(id=connected["id"]), headers=headers)

    assert response.status_code == 200, response.text
    disconnected = response.json()
    assert (disconnected["webhook_removed"], disconnected["note"]) == (True, None)
    assert disconnected["connection"]["status"] == "disabled"
    assert disconnected["connection"]["status_reason"] == "disconnected by the organization"
    assert disconnected["connection"]["webhook"]["status"] == "none"
    assert (
        disconnected["connection"]["access_token"],
        disconnected["connection"]["refresh_token"],
    ) == (None, None)
    assert await sandbox_webhooks(*sandbox) == []
    after = await connection_row(oauth_services, row.id)
    assert (after.access_token_encrypted, after.refresh_token_encrypted) == (None, None)
    assert after.token_expires_at is None
    assert await inbox_size(oauth_services) == 1
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed == disconnected["connection"]


async def test_another_organizations_connection_cannot_be_changed_or_disconnected(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    _, other_headers = await _other_organization(oauth_services)
    connected = await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    path = ONE_PATH.format(id=connected["id"])

    deleted = await api.delete(path, headers=other_headers)
    patched = await api.patch(path, headers=other_headers, json={"reply_channel": "salesbot"})

    assert_error(deleted, 404, "not_found")
    assert_error(patched, 404, "not_found")
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert (listed["status"], listed["reply_channel"]) == ("active", "note")
    assert len(await sandbox_webhooks(*sandbox)) == 1


@pytest.mark.parametrize(
    ("connection_id", "status", "code"),
    [(str(uuid.uuid4()), 404, "not_found"), ("not-a-uuid", 422, "validation_error")],
)
async def test_disconnecting_an_unknown_connection_is_a_4xx(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    connection_id: str,
    status: int,
    code: str,
) -> None:
    response = await api.delete(ONE_PATH.format(id=connection_id), headers=organization[1])

    assert_error(response, status, code)


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ({"errors_5xx": 100}, "could not be reached"),
        ({"revoke_tokens": True}, "does not accept the connection's token"),
    ],
)
async def test_disconnecting_when_kommo_will_not_remove_the_webhook_still_disconnects(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
    fault: dict[str, Any],
    says: str,
) -> None:
    _, headers = organization
    connected = await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    if fault.get("revoke_tokens"):
        # Kommo refuses the token and its refresh: the platform learns it on this call.
        await set_token_expiry(
            oauth_services, uuid.UUID(connected["id"]), datetime.now(UTC) - timedelta(minutes=1)
        )
    switch_faults(sandbox[0], **fault)

    response = await api.delete(ONE_PATH.format(id=connected["id"]), headers=headers)

    assert response.status_code == 200, response.text
    disconnected = response.json()
    assert disconnected["webhook_removed"] is False
    assert says in disconnected["note"]
    assert "Web hooks" in disconnected["note"]  # where the admin can remove it
    assert disconnected["connection"]["status"] == "disabled"
    assert disconnected["connection"]["webhook"]["error"] == disconnected["note"]
    row = await connection_row(oauth_services, uuid.UUID(connected["id"]))
    assert (row.access_token_encrypted, row.refresh_token_encrypted) == (None, None)


async def test_a_disconnected_account_connected_again_is_subscribed_again(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    connected = await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    await api.delete(ONE_PATH.format(id=connected["id"]), headers=headers)
    assert await sandbox_webhooks(*sandbox) == []

    again = await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)

    assert (again["id"], again["status"]) == (connected["id"], "active")
    assert len(await sandbox_webhooks(*sandbox)) == 1
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert listed["webhook"]["status"] == "subscribed"


async def test_an_uninstalled_account_connected_again_is_subscribed_again(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    oauth_services: Services,
    sandbox: tuple[str, str],
) -> None:
    _, headers = organization
    await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)
    params = {
        "account_id": str(ACCOUNT_ID),
        "client_uuid": CLIENT_ID,
        "signature": uninstall_signature(ACCOUNT_ID),
    }
    assert (await api.get(UNINSTALL_PATH, params=params)).json()["disabled"] == 1
    [uninstalled] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert uninstalled["webhook"]["status"] == "none"
    # Kommo removes an uninstalled integration's webhooks itself.
    await remove_sandbox_webhooks(sandbox)

    await connect_by_callback(api, headers)
    await run_queued_jobs(oauth_services)

    assert len(await sandbox_webhooks(*sandbox)) == 1
    [listed] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    assert (listed["status"], listed["webhook"]["status"]) == ("active", "subscribed")


# --- helpers -----------------------------------------------------------------------------


async def _only_connection_id(api: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    [item] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    return uuid.UUID(item["id"])


async def _other_organization(services: Services) -> tuple[uuid.UUID, dict[str, str]]:
    organization_id, key = await create_organization(services, name="Other")
    return organization_id, {"Authorization": f"Bearer {key}"}


async def connect_by_callback(api: httpx.AsyncClient, headers: dict[str, str]) -> dict[str, Any]:
    response = await api.get(CALLBACK_PATH, params=(await start_and_consent(api, headers))[1])
    assert response.status_code == 200, response.text
    connected: dict[str, Any] = response.json()
    return connected


async def remove_sandbox_webhooks(sandbox: tuple[str, str]) -> None:
    async with httpx.AsyncClient() as kommo:
        for webhook in await sandbox_webhooks(*sandbox):
            response = await kommo.request(
                "DELETE",
                f"{sandbox[0]}/api/v4/webhooks",
                json={"destination": webhook["destination"]},
                headers={"Authorization": f"Bearer {sandbox[1]}"},
            )
            response.raise_for_status()


async def add_agent(
    services: Services, organization_id: uuid.UUID, status: str = "active"
) -> uuid.UUID:
    async with transaction(services.sessions) as session:
        agent = Agent(
            organization_id=organization_id,
            name="Agent",
            instructions="Sell.",
            model="m",
            status=status,
        )
        session.add(agent)
        await session.flush()
        return agent.id


async def inbox_size(services: Services) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(InboxEvent)) or 0)


async def wait_for_subscription(services: Services, connection_id: uuid.UUID) -> None:
    """Run a worker until the connection's webhook is subscribed (a retry is seconds away)."""
    async with running_worker(services):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_SECONDS
        while (await connection_row(services, connection_id)).webhook_subscribed_at is None:
            assert loop.time() < deadline, "the webhook was not subscribed again"
            await asyncio.sleep(0.1)
