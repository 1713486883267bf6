"""Connecting Kommo accounts through the REST API, against the Kommo sandbox over real HTTP:
OAuth start → consent → callback, long-lived tokens, the listing, the uninstall hook.

Every refusal is a 4xx with the contract's error body, and writes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.crm.kommo.connections import sign_state
from agent_platform.crm.sandbox.store import ACCOUNT_ID
from agent_platform.services import Services, open_services
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
)
from tests.support.servers import serve_app

START_PATH = "/api/v1/integrations/kommo/oauth/start"
LIST_PATH = "/api/v1/integrations/kommo/connections"
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
    [("GET", START_PATH), ("GET", LIST_PATH), ("POST", LONG_LIVED_PATH)],
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


# --- helpers -----------------------------------------------------------------------------


async def _only_connection_id(api: httpx.AsyncClient, headers: dict[str, str]) -> uuid.UUID:
    [item] = (await api.get(LIST_PATH, headers=headers)).json()["items"]
    return uuid.UUID(item["id"])


async def _other_organization(services: Services) -> tuple[uuid.UUID, dict[str, str]]:
    organization_id, key = await create_organization(services, name="Other")
    return organization_id, {"Authorization": f"Bearer {key}"}
