"""/app/integrations: the organization's Kommo connections, connecting and disconnecting them.

Every change goes through crm.kommo (connections, reply_settings), as the REST API's do: a
token is checked with Kommo before anything is written, and a refused one writes nothing.
Anyone in the organization sees the page; changing it takes manage_integrations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from agent_platform.crm import repository as crm_repository
from agent_platform.crm.kommo import connections
from agent_platform.crm.kommo.connection_endpoints import WebhookOut
from agent_platform.crm.kommo.connections import AuthorizationDeclinedError, InvalidStateError
from agent_platform.crm.kommo.oauth import oauth_client
from agent_platform.crm.kommo.reply_settings import ReplySettingsChange, change_reply_settings
from agent_platform.crm.models import ConnectionStatus, CrmConnection, ReplyChannel
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.organization.permissions import Permission, allowed, require
from agent_platform.services import Services
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.integration_pages import queries
from agent_platform.web.integration_pages.display import when
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

PAGE = "/app/integrations"
# What a redirect back to the page may announce (anything else in `notice` is ignored).
NOTICES = frozenset({"connected", "saved", "disconnected"})
OUTAGE_STATUSES = frozenset({ConnectionStatus.NEEDS_REAUTH.value, ConnectionStatus.BLOCKED.value})
MISSING_FIELDS = "missing_fields"
# Refusals the page explains in the reader's language; any other shows the service's words.
TRANSLATED_ERRORS = frozenset(
    {
        "kommo_refused",
        "kommo_unavailable",
        "invalid_kommo_domain",
        "invalid_state",
        "authorization_declined",
        "kommo_oauth_not_configured",
        "reply_channel_incomplete",
        MISSING_FIELDS,
    }
)


@dataclass(frozen=True)
class PageError:
    """A refusal to show on the page, above the form it concerns."""

    form: str  # "oauth", "token", "sandbox" or "settings"
    code: str
    message: str

    @property
    def key(self) -> str | None:
        return f"integrations.error.{self.code}" if self.code in TRANSLATED_ERRORS else None

    @classmethod
    def of(cls, form: str, refused: AppError) -> PageError:
        return cls(form, refused.code, refused.message)


@dataclass(frozen=True)
class ConnectionView:
    connection: CrmConnection
    auth: str  # "oauth" or "long_lived"
    webhook: WebhookOut
    health: queries.InboxHealth
    domain: str  # what the token form takes to reconnect it


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _domain_of(connection: CrmConnection) -> str:
    return urlsplit(connection.base_url).netloc or connection.base_url


def form_domain(value: str) -> str:
    """The account's domain as typed: `acme` (a Kommo subdomain), `acme.kommo.com` or its URL.

    Only the bare subdomain is completed here; crm.kommo decides what it trusts."""
    value = value.strip()
    if value and "." not in value and ":" not in value and "/" not in value:
        return f"{value}.kommo.com"
    return value


async def _page(
    request: Request,
    user: SignedInUser,
    *,
    status_code: int = 200,
    error: PageError | None = None,
    domain: str = "",
    notice: str | None = None,
) -> Response:
    services = _services(request)
    async with tenant_transaction(services.sessions, user.organization_id) as session:
        found = await crm_repository.connections_of(session, user.organization_id)
        health = await queries.inbox_health(session, user.organization_id)
        agents = await queries.agent_choices(session, user.organization_id)
    views = [
        ConnectionView(
            connection=connection,
            auth="oauth" if connection.refresh_token_encrypted else "long_lived",
            webhook=WebhookOut.of(connection),
            health=health.get(connection.id, queries.InboxHealth(None, 0)),
            domain=_domain_of(connection),
        )
        for connection in found
    ]
    sandbox_url = services.settings.kommo_sandbox_url
    return render(
        request,
        "integrations/connections.html",
        status_code=status_code,
        views=views,
        when=when,
        agents=agents,
        reply_channels=[channel.value for channel in ReplyChannel],
        outage_statuses=OUTAGE_STATUSES,
        can_manage=allowed(user.role, Permission.MANAGE_INTEGRATIONS),
        oauth_configured=oauth_client(services.settings) is not None,
        sandbox_url=sandbox_url,
        error=error,
        domain=domain,
        notice=notice if notice in NOTICES else None,
    )


@router.get(PAGE)
async def integrations_page(
    request: Request,
    user: CurrentUser,
    notice: Annotated[str | None, Query(max_length=20)] = None,
    domain: Annotated[str, Query(max_length=255)] = "",
) -> Response:
    require(user.role, Permission.VIEW_DASHBOARD)
    return await _page(request, user, notice=notice, domain=domain)


@router.get(f"{PAGE}/kommo/authorize")
async def authorize(request: Request, user: CurrentUser) -> Response:
    """To Kommo's consent page, with a state signed for this organization; a link, not a
    form: the Content-Security-Policy lets forms lead to this site only."""
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    start = connections.start_authorization(
        _services(request), user.organization_id, "post_message"
    )
    return RedirectResponse(start.authorize_url, status_code=303)


@router.get(f"{PAGE}/kommo/callback")
async def oauth_callback(
    request: Request,
    user: CurrentUser,
    state: Annotated[str, Query(min_length=1, max_length=2000)],
    code: Annotated[str | None, Query(min_length=1, max_length=4000)] = None,
    referer: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Where Kommo sends the admin back when KOMMO_REDIRECT_URI names this page."""
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    services = _services(request)
    try:
        if error is not None or code is None or referer is None:
            raise AuthorizationDeclinedError("Kommo did not grant access (no code came back).")
        secret_key = services.settings.secret_key
        assert secret_key is not None, "ensure_secrets() provides it"
        # The state names the organization the flow was started for: it must be this one.
        if connections.verify_state(secret_key.get_secret_value(), state) != user.organization_id:
            raise InvalidStateError("This authorization was started for another organization.")
        await connections.connect_with_code(services, code=code, state=state, referer=referer)
    except AppError as refused:
        return await _page(
            request, user, status_code=refused.status_code, error=PageError.of("oauth", refused)
        )
    return redirect(f"{PAGE}?notice=connected")


@router.post(f"{PAGE}/long-lived-token")
async def connect_long_lived(
    request: Request,
    user: CsrfCheckedUser,
    domain: Annotated[str, Form(max_length=255)] = "",
    access_token: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    return await _connect(request, user, form_domain(domain), access_token, form="token")


@router.post(f"{PAGE}/sandbox")
async def connect_sandbox(
    request: Request,
    user: CsrfCheckedUser,
    access_token: Annotated[str, Form(max_length=10_000)] = "",
) -> Response:
    """The configured sandbox (KOMMO_SANDBOX_URL), with the access token it printed."""
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    sandbox_url = _services(request).settings.kommo_sandbox_url
    if not sandbox_url:
        raise connections.UntrustedKommoDomainError("No Kommo sandbox is configured here.")
    return await _connect(request, user, sandbox_url, access_token, form="sandbox")


async def _connect(
    request: Request, user: SignedInUser, domain: str, access_token: str, *, form: str
) -> Response:
    if not domain.strip() or not access_token.strip():
        missing = PageError(form, MISSING_FIELDS, "Give the account's domain and its access token.")
        return await _page(request, user, status_code=422, error=missing, domain=domain)
    try:
        await connections.connect_with_long_lived_token(
            _services(request),
            user.organization_id,
            domain=domain,
            access_token=access_token.strip(),
            expires_at=None,
        )
    except AppError as refused:
        return await _page(
            request,
            user,
            status_code=refused.status_code,
            error=PageError.of(form, refused),
            domain=domain if form == "token" else "",
        )
    return redirect(f"{PAGE}?notice=connected")


@router.post(f"{PAGE}/{{connection_id}}/settings")
async def change_settings(
    request: Request,
    user: CsrfCheckedUser,
    connection_id: uuid.UUID,
    reply_channel: Annotated[ReplyChannel, Form()],
    agent_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    try:
        agent = uuid.UUID(agent_id) if agent_id else None
    except ValueError as exc:
        raise NotFoundError("This organization has no agent with this id.") from exc
    change = ReplySettingsChange(
        given=frozenset({"reply_channel", "agent_id"}), reply_channel=reply_channel, agent_id=agent
    )
    try:
        await change_reply_settings(_services(request), user.organization_id, connection_id, change)
    except NotFoundError:
        # Another organization's connection or agent: the 404 page, as for a missing one.
        raise
    except AppError as refused:
        return await _page(
            request, user, status_code=refused.status_code, error=PageError.of("settings", refused)
        )
    return redirect(f"{PAGE}?notice=saved")


@router.get(f"{PAGE}/{{connection_id}}/disconnect")
async def confirm_disconnect(
    request: Request, user: CurrentUser, connection_id: uuid.UUID
) -> Response:
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    services = _services(request)
    async with tenant_transaction(services.sessions, user.organization_id) as session:
        connection = await connections.require_connection(
            session, user.organization_id, connection_id
        )
    return render(request, "integrations/disconnect.html", connection=connection)


@router.post(f"{PAGE}/{{connection_id}}/disconnect")
async def disconnect(request: Request, user: CsrfCheckedUser, connection_id: uuid.UUID) -> Response:
    require(user.role, Permission.MANAGE_INTEGRATIONS)
    await connections.disconnect(_services(request), user.organization_id, connection_id)
    return redirect(f"{PAGE}?notice=disconnected")
