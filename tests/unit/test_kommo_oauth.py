"""Kommo OAuth pieces that need no server: state signing, trusted domains, the uninstall
signature, and how token-endpoint answers become tokens or typed errors."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx

from agent_platform.crm.kommo.connections import (
    STATE_TTL_SECONDS,
    InvalidSignatureError,
    InvalidStateError,
    sign_state,
    verify_state,
    verify_uninstall_signature,
)
from agent_platform.crm.kommo.errors import KommoError, KommoRateLimited, KommoUnavailable
from agent_platform.crm.kommo.oauth import (
    KommoGrantRejectedError,
    OAuthClient,
    account_base_url,
    authorize_url,
    exchange_code,
    refresh_tokens,
)

KEY = "a-secret-key-of-at-least-thirty-two-characters"
ORGANIZATION = uuid.UUID("8f1d7c3e-2f55-4a8e-9a70-0c6f3e2b1a11")
CLIENT = OAuthClient("client-id-1", "client-secret-1", "https://platform.example/callback")
TOKEN_URL = "https://acme.kommo.com/oauth2/access_token"


def test_a_state_names_the_organization_it_was_issued_to() -> None:
    assert verify_state(KEY, sign_state(KEY, ORGANIZATION)) == ORGANIZATION


@pytest.mark.parametrize(
    "state",
    [
        "",
        ".",
        "abc",
        "abc.def",
        sign_state("another-key-of-at-least-thirty-two-characters", ORGANIZATION),
        sign_state(KEY, ORGANIZATION) + "x",
        "x" + sign_state(KEY, ORGANIZATION),
    ],
)
def test_a_state_we_did_not_sign_is_refused(state: str) -> None:
    with pytest.raises(InvalidStateError):
        verify_state(KEY, state)


def test_a_state_expires() -> None:
    issued = sign_state(KEY, ORGANIZATION, now=1_000_000)

    assert verify_state(KEY, issued, now=1_000_000 + STATE_TTL_SECONDS - 1) == ORGANIZATION
    with pytest.raises(InvalidStateError, match="expired"):
        verify_state(KEY, issued, now=1_000_000 + STATE_TTL_SECONDS + 1)


def test_the_authorize_url_is_kommos_consent_page() -> None:
    url = authorize_url("https://www.kommo.com/oauth", "client-id-1", "st&te")

    assert (
        url == "https://www.kommo.com/oauth?client_id=client-id-1&state=st%26te&mode=post_message"
    )


@pytest.mark.parametrize(
    ("referer", "base_url"),
    [
        ("acme.kommo.com", "https://acme.kommo.com"),
        ("ACME.Kommo.com", "https://acme.kommo.com"),
        ("my-shop.amocrm.ru", "https://my-shop.amocrm.ru"),
        ("shop1.amocrm.com", "https://shop1.amocrm.com"),
        ("https://acme.kommo.com", "https://acme.kommo.com"),
        ("127.0.0.1:8100", "http://127.0.0.1:8100"),
    ],
)
def test_accounts_live_under_kommos_domains_or_the_sandbox(referer: str, base_url: str) -> None:
    assert account_base_url(referer, "http://127.0.0.1:8100") == base_url


@pytest.mark.parametrize(
    "referer",
    [
        "evil.example.com",
        "kommo.com",
        "acme.kommo.com.evil.com",
        "acme.evilkommo.com",
        "a.b.kommo.com",
        "acme.kommo.com:8443",
        "acme.kommo.com/path",
        "acme_x.kommo.com",
        "-acme.kommo.com",
        "127.0.0.1:8100",
        "",
    ],
)
def test_other_domains_never_get_our_secret(referer: str) -> None:
    with pytest.raises(ValueError, match="not the domain"):
        account_base_url(referer, None)


def test_the_uninstall_signature_is_hmac_sha256_of_client_and_account() -> None:
    signature = hmac.new(b"client-secret-1", b"client-id-1|30000001", hashlib.sha256).hexdigest()

    verify_uninstall_signature(
        CLIENT, account_id="30000001", client_uuid="client-id-1", signature=signature
    )
    verify_uninstall_signature(
        CLIENT, account_id="30000001", client_uuid="client-id-1", signature=signature.upper()
    )
    with pytest.raises(InvalidSignatureError):
        verify_uninstall_signature(
            CLIENT, account_id="30000002", client_uuid="client-id-1", signature=signature
        )


def test_secrets_stay_out_of_reprs() -> None:
    assert "client-secret-1" not in repr(CLIENT)


@respx.mock
async def test_a_code_is_exchanged_for_tokens_that_expire_when_kommo_says() -> None:
    route = respx.post(TOKEN_URL).respond(
        200,
        json={
            "token_type": "Bearer",
            "expires_in": 86400,
            "access_token": "access-1",
            "refresh_token": "refresh-1",
        },
    )
    before = datetime.now(UTC)

    async with httpx.AsyncClient() as http:
        grant = await exchange_code(http, "https://acme.kommo.com", CLIENT, "code-1")

    sent = route.calls.last.request
    assert sent.headers["content-type"] == "application/json"
    assert httpx.Response(200, content=sent.content).json() == {
        "client_id": "client-id-1",
        "client_secret": "client-secret-1",
        "redirect_uri": "https://platform.example/callback",
        "grant_type": "authorization_code",
        "code": "code-1",
    }
    assert (grant.access_token, grant.refresh_token) == ("access-1", "refresh-1")
    assert (
        before + timedelta(hours=24) <= grant.expires_at <= datetime.now(UTC) + timedelta(hours=24)
    )
    assert "access-1" not in repr(grant)
    assert "refresh-1" not in repr(grant)


@pytest.mark.parametrize(
    ("response", "error", "detail"),
    [
        (
            httpx.Response(401, json={"hint": "Token has been revoked", "status": 401}),
            KommoGrantRejectedError,
            "Token has been revoked",
        ),
        (
            httpx.Response(400, json={"title": "Bad request", "detail": "Missing fields"}),
            KommoGrantRejectedError,
            "Missing fields",
        ),
        (httpx.Response(503, text="<html>down</html>"), KommoUnavailable, "Service Unavailable"),
        (httpx.Response(429, headers={"Retry-After": "2"}), KommoRateLimited, "Too Many Requests"),
        (httpx.Response(200, json={"access_token": "only-half"}), KommoError, "unexpected"),
        (httpx.Response(200, text="not json"), KommoError, "unexpected"),
        (httpx.Response(404), KommoError, "Not Found"),
    ],
)
@respx.mock
async def test_a_refused_or_broken_answer_is_a_typed_error(
    response: httpx.Response, error: type[KommoError], detail: str
) -> None:
    respx.post(TOKEN_URL).mock(return_value=response)

    async with httpx.AsyncClient() as http:
        with pytest.raises(error) as raised:
            await refresh_tokens(http, "https://acme.kommo.com", CLIENT, "refresh-1")

    assert type(raised.value) is error
    assert detail in raised.value.detail
    assert "refresh-1" not in str(raised.value)
    assert "client-secret-1" not in str(raised.value)


@respx.mock
async def test_no_answer_at_all_is_worth_retrying_and_tells_no_secret() -> None:
    respx.post(TOKEN_URL).mock(side_effect=httpx.ConnectTimeout("timed out"))

    async with httpx.AsyncClient() as http:
        with pytest.raises(KommoUnavailable) as raised:
            await refresh_tokens(http, "https://acme.kommo.com", CLIENT, "refresh-1")

    assert raised.value.retryable
    assert "ConnectTimeout" in str(raised.value)
    assert "refresh-1" not in str(raised.value)
