"""Kommo's OAuth 2: the consent page address, the code exchange, the refresh, the account's URL.

From Kommo's developer documentation ("OAuth 2.0" and "Step-by-step example" on
developers.kommo.com / kommo.com/developers/content/oauth/step-by-step):
- an admin grants access at `https://www.kommo.com/oauth?client_id=…&state=…&mode=…`;
- Kommo sends the browser back to the integration's redirect URI with `code`, `state` and
  `referer`, the domain of the account that granted access (`acme.kommo.com`);
- `POST https://{referer}/oauth2/access_token` with `client_id`, `client_secret`,
  `grant_type` (`authorization_code` with `code`, or `refresh_token` with `refresh_token`)
  and `redirect_uri` answers `token_type`, `expires_in`, `access_token`, `refresh_token`;
- a code is good once and for 20 minutes; an access token lives 24 hours; each refresh
  returns a new refresh token and the one used stops working; a refused grant is a 400/401
  problem body whose `hint` says why ("Token has been revoked").

Nothing here touches the database: tokens.py and connections.py decide what to keep.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from agent_platform.config import Settings
from agent_platform.crm.kommo.errors import (
    KommoAuthError,
    KommoError,
    KommoRateLimited,
    KommoUnavailable,
)

# Domains under which Kommo (and amoCRM, the same service) host accounts. A callback's
# `referer` outside them is refused: we would send our client secret to whoever it names.
KOMMO_ACCOUNT_DOMAINS = ("kommo.com", "amocrm.ru", "amocrm.com")
_ACCOUNT_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.(?:"
    + "|".join(re.escape(domain) for domain in KOMMO_ACCOUNT_DOMAINS)
    + ")"
)
TOKEN_ENDPOINT_PATH = "/oauth2/access_token"  # noqa: S105 - a path, not a secret


class KommoGrantRejectedError(KommoAuthError):
    """Kommo refused the code or the refresh token (used, expired, revoked, wrong client).

    Repeating cannot help: only an admin granting access again can.
    """


@dataclass(frozen=True)
class OAuthClient:
    """Our integration as Kommo knows it."""

    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    redirect_uri: str


def oauth_client(settings: Settings) -> OAuthClient | None:
    """The integration from KOMMO_CLIENT_ID, _SECRET and _REDIRECT_URI; None unless all are set."""
    secret = settings.kommo_client_secret.get_secret_value() if settings.kommo_client_secret else ""
    if not (settings.kommo_client_id and secret and settings.kommo_redirect_uri):
        return None
    return OAuthClient(settings.kommo_client_id, secret, settings.kommo_redirect_uri)


@dataclass(frozen=True)
class TokenGrant:
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str = dataclasses.field(repr=False)
    expires_at: datetime


def authorize_url(oauth_url: str, client_id: str, state: str, mode: str = "post_message") -> str:
    """The consent page. `post_message` lets a dashboard open it in a popup and hear the result."""
    query = urlencode({"client_id": client_id, "state": state, "mode": mode})
    return f"{oauth_url}{'&' if '?' in oauth_url else '?'}{query}"


def account_base_url(referer: str, sandbox_url: str | None) -> str:
    """The API base URL of the account a callback's `referer` names; ValueError if untrusted.

    Real accounts are reached over HTTPS under Kommo's own domains; the configured sandbox
    (KOMMO_SANDBOX_URL) is reached at its configured URL.
    """
    referer = referer.strip().lower()
    if "://" in referer:  # Kommo sends a bare domain; tolerate a full URL with the same host
        referer = urlsplit(referer).netloc
    if sandbox_url and referer == urlsplit(sandbox_url).netloc.lower():
        return sandbox_url.rstrip("/")
    if not _ACCOUNT_HOST.fullmatch(referer):
        raise ValueError(f"{referer[:100]!r} is not the domain of a Kommo account")
    host = referer
    return f"https://{host}"


def subdomain_of(base_url: str) -> str:
    """`https://acme.kommo.com` → `acme`; a sandbox address gives its host."""
    host = urlsplit(base_url).hostname or base_url
    return host.split(".")[0] if any(host.endswith(d) for d in KOMMO_ACCOUNT_DOMAINS) else host


async def exchange_code(
    http: httpx.AsyncClient, base_url: str, client: OAuthClient, code: str
) -> TokenGrant:
    return await _token_request(
        http,
        base_url,
        client,
        {"grant_type": "authorization_code", "code": code},
    )


async def refresh_tokens(
    http: httpx.AsyncClient, base_url: str, client: OAuthClient, refresh_token: str
) -> TokenGrant:
    return await _token_request(
        http,
        base_url,
        client,
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
    )


async def _token_request(
    http: httpx.AsyncClient, base_url: str, client: OAuthClient, grant: dict[str, str]
) -> TokenGrant:
    body = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "redirect_uri": client.redirect_uri,
        **grant,
    }
    requested_at = datetime.now(UTC)
    try:
        response = await http.post(base_url.rstrip("/") + TOKEN_ENDPOINT_PATH, json=body)
    except httpx.TransportError as exc:
        # The body holds our secret and the grant: only the failure's type is told.
        raise KommoUnavailable(None, f"{type(exc).__name__} calling {TOKEN_ENDPOINT_PATH}") from exc
    if response.is_success:
        return _grant_from(response, requested_at)
    detail = _problem_detail(response)
    status = response.status_code
    if status in (400, 401, 403):
        raise KommoGrantRejectedError(status, detail)
    if status == 429:
        retry_after = response.headers.get("Retry-After", "")
        raise KommoRateLimited(
            status, detail, retry_after=float(retry_after) if retry_after.isdigit() else None
        )
    if status >= 500:
        raise KommoUnavailable(status, detail)
    raise KommoError(status, detail)


def _grant_from(response: httpx.Response, requested_at: datetime) -> TokenGrant:
    try:
        body: Any = response.json()
        access_token, refresh_token = str(body["access_token"]), str(body["refresh_token"])
        # Counted from when we asked, so the token is never thought to live longer than it does.
        expires_at = requested_at + timedelta(seconds=int(body["expires_in"]))
    except (ValueError, LookupError, TypeError) as exc:
        raise KommoError(response.status_code, "unexpected token response from Kommo") from exc
    if not access_token or not refresh_token:
        raise KommoError(response.status_code, "Kommo answered without tokens")
    return TokenGrant(access_token, refresh_token, expires_at)


def _problem_detail(response: httpx.Response) -> str:
    """Kommo's reason: `hint` is the specific one ("Token has been revoked"), then `detail`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("hint", "detail", "title"):
            if body.get(key):
                return str(body[key])[:500]
    return response.reason_phrase or f"HTTP {response.status_code}"
