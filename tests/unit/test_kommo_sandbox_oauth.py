"""The sandbox's OAuth and faults behave as Kommo's do.

Kommo's rules: kommo.com/developers/content/oauth/step-by-step (codes good once for 20
minutes; each refresh returns a new refresh token and spends the old one; refusals are
problem bodies with a `hint`, e.g. 401 "Token has been revoked") and developers.kommo.com
"Limits" (7 requests per second, then 429).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from agent_platform.crm.sandbox.app import create_sandbox_app
from tests.support.servers import serve_app

TOKEN = "sandbox-static-token"
CLIENT = {
    "client_id": "integration-1",
    "client_secret": "integration-1-secret",
    "redirect_uri": "https://platform.example/callback",
}


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    with serve_app(create_sandbox_app(access_token=TOKEN)) as url:
        yield url


@pytest.fixture
async def kommo(sandbox_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox_url) as http:
        (await http.put("/sandbox/oauth/integration", json=CLIENT)).raise_for_status()
        yield http


async def authorization_code(kommo: httpx.AsyncClient, state: str = "s-1") -> dict[str, str]:
    response = await kommo.get(
        "/oauth", params={"client_id": CLIENT["client_id"], "state": state, "mode": "popup"}
    )
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(CLIENT["redirect_uri"] + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


async def token_request(kommo: httpx.AsyncClient, **grant: str) -> httpx.Response:
    body = {**CLIENT, **grant}
    return await kommo.post("/oauth2/access_token", json=body)


async def tokens_for_new_code(kommo: httpx.AsyncClient) -> dict[str, Any]:
    code = (await authorization_code(kommo))["code"]
    response = await token_request(kommo, grant_type="authorization_code", code=code)
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def account_status(kommo: httpx.AsyncClient, access_token: str) -> int:
    response = await kommo.get(
        "/api/v4/account", headers={"Authorization": f"Bearer {access_token}"}
    )
    return response.status_code


def assert_refusal(response: httpx.Response, status: int, hint: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert (body["status"], body["hint"]) == (status, hint)
    assert body["title"]
    assert body["detail"]


async def test_consent_comes_back_with_a_code_the_state_and_the_accounts_domain(
    kommo: httpx.AsyncClient, sandbox_url: str
) -> None:
    query = await authorization_code(kommo, state="opaque-state")

    assert query["state"] == "opaque-state"
    assert query["referer"] == urlsplit(sandbox_url).netloc
    assert query["client_id"] == CLIENT["client_id"]
    assert query["code"]


async def test_consent_for_an_unknown_integration_is_refused(kommo: httpx.AsyncClient) -> None:
    response = await kommo.get("/oauth", params={"client_id": "someone-else", "state": "s"})

    assert_refusal(response, 400, "Unknown client_id")


async def test_a_code_buys_tokens_once(kommo: httpx.AsyncClient) -> None:
    code = (await authorization_code(kommo))["code"]

    first = await token_request(kommo, grant_type="authorization_code", code=code)
    again = await token_request(kommo, grant_type="authorization_code", code=code)

    assert first.status_code == 200
    tokens = first.json()
    assert set(tokens) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert (tokens["token_type"], tokens["expires_in"]) == ("Bearer", 86400)
    assert await account_status(kommo, tokens["access_token"]) == 200
    assert_refusal(again, 400, "Authorization code has been revoked")


async def test_the_token_endpoint_also_takes_a_form(kommo: httpx.AsyncClient) -> None:
    code = (await authorization_code(kommo))["code"]

    response = await kommo.post(
        "/oauth2/access_token", data={**CLIENT, "grant_type": "authorization_code", "code": code}
    )

    assert response.status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "hint"),
    [
        ({"client_secret": "wrong"}, 401, "Client authentication failed"),
        ({"client_id": "integration-2"}, 401, "Client authentication failed"),
        ({"redirect_uri": "https://elsewhere.example/cb"}, 400, "Redirect URI is not valid"),
        (
            {"grant_type": "password"},
            400,
            "The authorization grant type is not supported by the authorization server.",
        ),
        ({"code": "never-issued"}, 400, "Authorization code has been revoked"),
    ],
)
async def test_a_bad_token_request_is_refused_like_kommo(
    kommo: httpx.AsyncClient, change: dict[str, str], status: int, hint: str
) -> None:
    code = (await authorization_code(kommo))["code"]
    body = {**CLIENT, "grant_type": "authorization_code", "code": code, **change}

    assert_refusal(await kommo.post("/oauth2/access_token", json=body), status, hint)


async def test_refresh_tokens_rotate_and_are_good_once(kommo: httpx.AsyncClient) -> None:
    tokens = await tokens_for_new_code(kommo)

    refreshed = await token_request(
        kommo, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    reused = await token_request(
        kommo, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )

    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert await account_status(kommo, new["access_token"]) == 200
    assert_refusal(reused, 401, "Token has been revoked")
    grants = (await kommo.get("/sandbox/oauth/grants")).json()["grants"]
    assert [(g["grant_type"], g["outcome"]) for g in grants] == [
        ("authorization_code", "issued"),
        ("refresh_token", "issued"),
        ("refresh_token", "Token has been revoked"),
    ]


async def test_expired_access_tokens_are_refused_and_refresh_still_works(
    kommo: httpx.AsyncClient,
) -> None:
    tokens = await tokens_for_new_code(kommo)

    (await kommo.post("/sandbox/faults", json={"expire_access_tokens": True})).raise_for_status()

    refused = await kommo.get(
        "/api/v4/account", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Token has expired"
    refreshed = await token_request(
        kommo, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert await account_status(kommo, refreshed.json()["access_token"]) == 200


async def test_revoking_access_stops_every_token(kommo: httpx.AsyncClient) -> None:
    tokens = await tokens_for_new_code(kommo)

    (await kommo.post("/sandbox/faults", json={"revoke_tokens": True})).raise_for_status()

    assert await account_status(kommo, tokens["access_token"]) == 401
    refresh = await token_request(
        kommo, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
    )
    assert_refusal(refresh, 401, "Token has been revoked")
    # The sandbox's own long-lived token is not an OAuth grant: it keeps working.
    assert await account_status(kommo, TOKEN) == 200


async def test_a_429_storm_says_when_to_come_back(kommo: httpx.AsyncClient) -> None:
    switch = {"storm_429": 2, "retry_after": 3}
    (await kommo.post("/sandbox/faults", json=switch)).raise_for_status()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    answers = [await kommo.get("/api/v4/account", headers=headers) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert [answer.headers.get("Retry-After") for answer in answers[:2]] == ["3", "3"]
    assert answers[0].json()["status"] == 429


async def test_5xx_and_blocked_faults(kommo: httpx.AsyncClient) -> None:
    (
        await kommo.post("/sandbox/faults", json={"errors_5xx": 1, "error_status": 502})
    ).raise_for_status()
    assert [await account_status(kommo, TOKEN) for _ in range(2)] == [502, 200]

    (await kommo.post("/sandbox/faults", json={"blocked": True})).raise_for_status()
    assert await account_status(kommo, TOKEN) == 403

    (await kommo.delete("/sandbox/faults")).raise_for_status()
    assert await account_status(kommo, TOKEN) == 200
    assert (await kommo.get("/sandbox/faults")).json()["blocked"] is False


async def test_every_api_request_is_logged_with_its_answer(kommo: httpx.AsyncClient) -> None:
    await account_status(kommo, TOKEN)
    await account_status(kommo, "wrong")

    logged = (await kommo.get("/sandbox/faults/requests")).json()["requests"]

    assert [(r["method"], r["path"], r["status"]) for r in logged] == [
        ("GET", "/api/v4/account", 200),
        ("GET", "/api/v4/account", 401),
    ]
    assert logged[0]["at"] <= logged[1]["at"]


@pytest.mark.parametrize(
    "body", [{"error_rate_5xx": 2}, {"storm_429": -1}, {"error_status": 404}, {"nonsense": 1}]
)
async def test_a_bad_fault_switch_is_refused(
    kommo: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    response = await kommo.post("/sandbox/faults", json=body)

    assert response.status_code == 400
    assert (await kommo.get("/sandbox/faults")).json()["storm_429"] == 0
