"""The sandbox's OAuth 2, as Kommo's: consent page, code exchange, refresh, token expiry.

Kommo's rules, kept here (kommo.com/developers/content/oauth/step-by-step):
- `GET /oauth?client_id=…&state=…` is the consent page. The sandbox's one account always
  consents: it redirects at once to the integration's redirect URI with `code`, `state`,
  `referer` (this sandbox's host, as Kommo gives the account's domain) and `client_id`;
- `POST /oauth2/access_token` (JSON or form) takes `client_id`, `client_secret`,
  `redirect_uri` and `grant_type` = `authorization_code` (with `code`) or `refresh_token`
  (with `refresh_token`), and answers `token_type`, `expires_in`, `access_token`,
  `refresh_token`;
- a code is good once and for 20 minutes; refresh tokens are single use: each refresh
  issues a new pair and the spent refresh token is refused from then on, with Kommo's 401
  `"hint": "Token has been revoked"`;
- access tokens expire (24 h by default; tests shorten it) and are then refused with 401.

Tokens the sandbox issued open its API like its own static token (through the app's
`accepts_token` check), and an expired or revoked one is refused with Kommo's reason.

Inspection (unauthenticated, like the rest of /sandbox): `PUT /sandbox/oauth/integration`
registers the integration (client id, secret, redirect URI, token lifetime), and
`GET /sandbox/oauth/grants` lists every token request with its outcome, so tests can count
refreshes.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_CLIENT_ID = "sandbox-integration"
CODE_TTL_SECONDS = 20 * 60
ACCESS_TOKEN_TTL_SECONDS = 24 * 60 * 60
_BAD_REQUEST = HTTPStatus.BAD_REQUEST
_PROBLEM_TYPE = "https://developers.kommo.com/v3/errors/OAuthProblemJson"


@dataclass
class Integration:
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str | None
    access_token_ttl_seconds: float = ACCESS_TOKEN_TTL_SECONDS


@dataclass(frozen=True)
class GrantRecord:
    grant_type: str
    outcome: str  # "issued" or Kommo's hint for the refusal
    at: float


class OAuthRefusal(Exception):  # noqa: N818 - a refusal, said the way Kommo says it
    def __init__(self, status: int, hint: str) -> None:
        super().__init__(hint)
        self.status = status
        self.hint = hint


class SandboxOAuth:
    """Codes, tokens and the record of grants. Thread-safe: tests read it from other threads."""

    def __init__(self, integration: Integration) -> None:
        self._lock = threading.Lock()
        self.integration = integration
        self._codes: dict[str, float] = {}  # code → expiry
        self._access_tokens: dict[str, float] = {}  # token → expiry (revoked: removed)
        self._refresh_tokens: set[str] = set()  # live ones; spent or revoked ones are gone
        self._revoked_access_tokens: set[str] = set()
        self.grants: list[GrantRecord] = []

    def issue_code(self) -> str:
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = time.time() + CODE_TTL_SECONDS
        return code

    def grant(self, form: dict[str, str]) -> dict[str, Any]:
        grant_type = form.get("grant_type", "")
        try:
            tokens = self._grant(grant_type, form)
        except OAuthRefusal as refusal:
            self._record(grant_type, refusal.hint)
            raise
        self._record(grant_type, "issued")
        return tokens

    def _grant(self, grant_type: str, form: dict[str, str]) -> dict[str, Any]:
        integration = self.integration
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if not (
            secrets.compare_digest(client_id.encode(), integration.client_id.encode())
            and secrets.compare_digest(client_secret.encode(), integration.client_secret.encode())
        ):
            raise OAuthRefusal(HTTPStatus.UNAUTHORIZED, "Client authentication failed")
        if integration.redirect_uri and form.get("redirect_uri") != integration.redirect_uri:
            raise OAuthRefusal(HTTPStatus.BAD_REQUEST, "Redirect URI is not valid")
        with self._lock:
            if grant_type == "authorization_code":
                expiry = self._codes.pop(form.get("code", ""), None)
                if expiry is None:
                    raise OAuthRefusal(_BAD_REQUEST, "Authorization code has been revoked")
                if expiry < time.time():
                    raise OAuthRefusal(_BAD_REQUEST, "Authorization code has expired")
            elif grant_type == "refresh_token":
                refresh_token = form.get("refresh_token", "")
                if refresh_token not in self._refresh_tokens:
                    raise OAuthRefusal(HTTPStatus.UNAUTHORIZED, "Token has been revoked")
                self._refresh_tokens.discard(refresh_token)  # single use
            else:
                raise OAuthRefusal(
                    HTTPStatus.BAD_REQUEST,
                    "The authorization grant type is not supported by the authorization server.",
                )
            access_token, refresh_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            ttl = integration.access_token_ttl_seconds
            self._access_tokens[access_token] = time.time() + ttl
            self._refresh_tokens.add(refresh_token)
        return {
            "token_type": "Bearer",
            "expires_in": int(ttl),
            "access_token": access_token,
            "refresh_token": refresh_token,
        }

    def accepts(self, token: str) -> bool:
        """Whether `token` is an access token issued here and still valid."""
        with self._lock:
            expiry = self._access_tokens.get(token)
        return expiry is not None and expiry > time.time()

    def refusal(self, token: str) -> str | None:
        """Why an access token issued here is refused now; None if valid or never issued."""
        with self._lock:
            if token in self._revoked_access_tokens:
                return "Token has been revoked"
            expiry = self._access_tokens.get(token)
        return "Token has expired" if expiry is not None and expiry <= time.time() else None

    def revoke_all(self) -> None:
        """As when an admin removes the integration's access: every token stops working."""
        with self._lock:
            self._revoked_access_tokens |= set(self._access_tokens)
            self._access_tokens.clear()
            self._refresh_tokens.clear()

    def expire_access_tokens(self) -> None:
        """Every issued access token expires now; refresh tokens keep working."""
        with self._lock:
            now = time.time()
            for token in self._access_tokens:
                self._access_tokens[token] = now

    def _record(self, grant_type: str, outcome: str) -> None:
        with self._lock:
            self.grants.append(GrantRecord(grant_type, outcome, time.time()))


def install_oauth(app: FastAPI) -> None:
    """OAuth for a sandbox app: its endpoints, and issued tokens accepted by its API."""
    oauth = SandboxOAuth(
        Integration(
            client_id=DEFAULT_CLIENT_ID,
            # The operator knows the sandbox's token; it doubles as the default secret.
            client_secret=app.state.access_token,
            redirect_uri=None,
        )
    )
    app.state.oauth = oauth
    accepts_static: Callable[[str], bool] = app.state.accepts_token
    app.state.accepts_token = lambda token: accepts_static(token) or oauth.accepts(token)
    app.include_router(router)
    app.add_middleware(RefusedTokens)


def _oauth(request: Request) -> SandboxOAuth:
    oauth: SandboxOAuth = request.app.state.oauth
    return oauth


router = APIRouter()


@router.get("/oauth", include_in_schema=False)
async def consent(request: Request, client_id: str = "", state: str = "") -> Response:
    oauth = _oauth(request)
    integration = oauth.integration
    if client_id != integration.client_id:
        return _refused(HTTPStatus.BAD_REQUEST, "Unknown client_id")
    if not integration.redirect_uri:
        return _refused(
            HTTPStatus.BAD_REQUEST,
            "The integration has no redirect URI: register one with PUT /sandbox/oauth/integration",
        )
    query = urlencode(
        {
            "code": oauth.issue_code(),
            "state": state,
            "referer": request.url.netloc,
            "client_id": client_id,
        }
    )
    separator = "&" if "?" in integration.redirect_uri else "?"
    return RedirectResponse(f"{integration.redirect_uri}{separator}{query}", status_code=302)


@router.post("/oauth2/access_token", include_in_schema=False)
async def access_token(request: Request) -> Response:
    form = await _token_request_body(request)
    try:
        return JSONResponse(_oauth(request).grant(form))
    except OAuthRefusal as refusal:
        return _refused(refusal.status, refusal.hint)


async def _token_request_body(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            body = await request.json()
            return {str(k): str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        form = await request.form(max_fields=20)
        return {key: value for key, value in form.items() if isinstance(value, str)}
    except ValueError:
        return {}


class IntegrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: str = Field(min_length=1)
    client_secret: str = Field(min_length=1)
    redirect_uri: str | None = None
    access_token_ttl_seconds: float = Field(default=ACCESS_TOKEN_TTL_SECONDS, gt=0)


@router.put("/sandbox/oauth/integration", include_in_schema=False)
async def register_integration(request: Request, body: IntegrationIn) -> Response:
    _oauth(request).integration = Integration(**body.model_dump())
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/sandbox/oauth/grants", include_in_schema=False)
async def grants(request: Request) -> Response:
    return JSONResponse({"grants": [asdict(grant) for grant in list(_oauth(request).grants)]})


def _refused(status: int, hint: str) -> Response:
    return JSONResponse(
        {
            "hint": hint,
            "title": HTTPStatus(status).phrase,
            "type": _PROBLEM_TYPE,
            "status": int(status),
            "detail": "Some request parameters are missing or invalid",
        },
        status_code=status,
        media_type="application/problem+json",
    )


def _unauthorized(detail: str) -> Response:
    """The API's own 401, as for any token it does not accept."""
    return JSONResponse(
        {
            "title": "Unauthorized",
            "type": "https://httpstatus.es/401",
            "status": 401,
            "detail": detail,
        },
        status_code=HTTPStatus.UNAUTHORIZED,
        media_type="application/problem+json",
    )


class RefusedTokens:
    """An issued token that expired or was revoked gets Kommo's reason, not a bare 401."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            oauth: SandboxOAuth = scope["app"].state.oauth
            for name, value in scope["headers"]:
                if name == b"authorization" and value.lower().startswith(b"bearer "):
                    refusal = oauth.refusal(value[7:].decode("latin-1"))
                    if refusal is not None:
                        await _unauthorized(refusal)(scope, receive, send)
                        return
        await self.app(scope, receive, send)
