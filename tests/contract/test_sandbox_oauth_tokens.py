"""A token the sandbox's OAuth issued opens every API route, as a Kommo token does: the
record routes and the Salesbot continue alike; once revoked, none of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.contract.sandbox import RunningSandbox, running_sandbox

INTEGRATION = {
    "client_id": "contract-integration",
    "client_secret": "contract-integration-secret",
    "redirect_uri": "https://platform.example/callback",
}
CONTINUE = {
    "data": {},
    "execute_handlers": [{"handler": "show", "params": {"type": "text", "value": "Hi"}}],
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
async def kommo(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        await sandbox.fresh(http)
        (await http.put("/sandbox/oauth/integration", json=INTEGRATION)).raise_for_status()
        yield http


async def _issued_token(kommo: httpx.AsyncClient) -> str:
    """The admin consents, the integration exchanges the code: an OAuth access token."""
    consent = await kommo.get(
        "/oauth", params={"client_id": INTEGRATION["client_id"], "state": "s"}
    )
    code = parse_qs(urlsplit(consent.headers["location"]).query)["code"][0]
    grant = {**INTEGRATION, "grant_type": "authorization_code", "code": code}
    tokens = await kommo.post("/oauth2/access_token", json=grant)
    tokens.raise_for_status()
    token: str = tokens.json()["access_token"]
    return token


async def _statuses(kommo: httpx.AsyncClient, token: str, continue_id: int) -> list[int]:
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        await kommo.get("/api/v4/account", headers=headers),
        await kommo.get("/api/v4/leads", headers=headers),
        await kommo.post(
            f"/api/v4/salesbot/7/continue/{continue_id}", json=CONTINUE, headers=headers
        ),
    ]
    return [answer.status_code for answer in answers]


async def test_an_issued_token_opens_every_route_until_revoked(kommo: httpx.AsyncClient) -> None:
    token = await _issued_token(kommo)

    assert await _statuses(kommo, token, continue_id=1) == [200, 200, 200]

    (await kommo.post("/sandbox/faults", json={"revoke_tokens": True})).raise_for_status()
    assert await _statuses(kommo, token, continue_id=2) == [401, 401, 401]
