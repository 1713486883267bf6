"""Connecting Kommo accounts over HTTP: OAuth start and callback, long-lived tokens, listing,
and Kommo's "integration uninstalled" hook.

Tokens never leave in a response: an answer says whether one is held, not what it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agent_platform.crm.kommo import connections
from agent_platform.crm.kommo.connections import (
    AuthorizationDeclinedError,
    InvalidSignatureError,
)
from agent_platform.crm.models import CrmConnection
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(tags=["kommo connections"])

MASK = "********"
MAX_UNINSTALL_FORM_BYTES = 10_000


class AuthorizationStartOut(BaseModel):
    authorize_url: str
    state: str
    expires_at: datetime


class ConnectionOut(BaseModel):
    id: uuid.UUID
    provider: str
    subdomain: str
    account_id: int | None
    base_url: str
    status: str
    status_reason: str | None
    status_changed_at: datetime | None
    auth: Literal["oauth", "long_lived"]
    access_token: str | None = Field(description="Masked: whether a token is held, never which.")
    refresh_token: str | None = Field(description="Masked; none for long-lived tokens.")
    token_expires_at: datetime | None
    agent_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, connection: CrmConnection) -> ConnectionOut:
        return cls(
            id=connection.id,
            provider=connection.provider,
            subdomain=connection.subdomain,
            account_id=connection.account_id,
            base_url=connection.base_url,
            status=connection.status,
            status_reason=connection.status_reason,
            status_changed_at=connection.status_changed_at,
            auth="oauth" if connection.refresh_token_encrypted else "long_lived",
            access_token=MASK if connection.access_token_encrypted else None,
            refresh_token=MASK if connection.refresh_token_encrypted else None,
            token_expires_at=connection.token_expires_at,
            agent_id=connection.agent_id,
            created_at=connection.created_at,
        )


class ConnectionList(BaseModel):
    items: list[ConnectionOut]


class LongLivedTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(
        min_length=3, max_length=255, description="The account's domain, e.g. acme.kommo.com."
    )
    access_token: SecretStr = Field(min_length=20, max_length=10_000)
    expires_at: datetime | None = Field(
        default=None, description="When the token stops working, as chosen when it was made."
    )


class UninstallOut(BaseModel):
    status: Literal["ok"] = "ok"
    disabled: int


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get(
    "/api/v1/integrations/kommo/oauth/start",
    summary="Start connecting a Kommo account (OAuth)",
)
async def start_oauth(
    request: Request,
    principal: CurrentPrincipal,
    mode: Literal["post_message", "popup"] = "post_message",
) -> AuthorizationStartOut:
    """The address of Kommo's consent page, with a signed `state` naming this organization."""
    start = connections.start_authorization(_services(request), principal.organization_id, mode)
    return AuthorizationStartOut(
        authorize_url=start.authorize_url, state=start.state, expires_at=start.expires_at
    )


@router.get(
    "/api/v1/integrations/kommo/oauth/callback",
    summary="Kommo's redirect after an admin granted access",
)
async def oauth_callback(
    request: Request,
    state: Annotated[str, Query(min_length=1, max_length=2000)],
    code: Annotated[str | None, Query(min_length=1, max_length=4000)] = None,
    referer: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
    error: Annotated[str | None, Query(max_length=200)] = None,
) -> ConnectionOut:
    """Exchanges the code at the account's domain and keeps the tokens, encrypted."""
    if error is not None or code is None or referer is None:
        raise AuthorizationDeclinedError(
            "Kommo did not grant access (no code came back).",
            details={"kommo": error} if error else None,
        )
    connection = await connections.connect_with_code(
        _services(request), code=code, state=state, referer=referer
    )
    return ConnectionOut.of(connection)


@router.post(
    "/api/v1/integrations/kommo/long-lived-token",
    status_code=201,
    summary="Connect a Kommo account with a private integration's long-lived token",
)
async def connect_long_lived(
    request: Request, principal: CurrentPrincipal, body: LongLivedTokenIn
) -> ConnectionOut:
    connection = await connections.connect_with_long_lived_token(
        _services(request),
        principal.organization_id,
        domain=body.domain,
        access_token=body.access_token.get_secret_value(),
        expires_at=body.expires_at,
    )
    return ConnectionOut.of(connection)


@router.get("/api/v1/integrations/kommo/connections", summary="This organization's connections")
async def list_connections(request: Request, principal: CurrentPrincipal) -> ConnectionList:
    found = await connections.list_connections(_services(request), principal.organization_id)
    return ConnectionList(items=[ConnectionOut.of(connection) for connection in found])


@router.api_route(
    "/webhooks/kommo/uninstall",
    methods=["GET", "POST"],
    summary="Kommo's hook: the integration was uninstalled from an account",
)
async def kommo_uninstalled(request: Request) -> UninstallOut:
    """Kommo calls it with `account_id`, `client_uuid` and `signature` (GET query; a POST may
    carry them in a form body instead)."""
    services = _services(request)
    parameters = dict(request.query_params)
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        if int(request.headers.get("content-length") or 0) > MAX_UNINSTALL_FORM_BYTES:
            raise InvalidSignatureError("The hook's body is too large to be Kommo's.")
        form = await request.form(max_fields=20)
        parameters |= {key: value for key, value in form.items() if isinstance(value, str)}
    client = connections.require_oauth_client(services)
    account_id, client_uuid, signature = (
        parameters.get("account_id", ""),
        parameters.get("client_uuid", ""),
        parameters.get("signature", ""),
    )
    if not (account_id and client_uuid and signature):
        raise connections.UninstallHookError(
            "account_id, client_uuid and signature are required.",
            details=[
                {"path": name, "message": "Field required"}
                for name in ("account_id", "client_uuid", "signature")
                if not parameters.get(name)
            ],
        )
    connections.verify_uninstall_signature(
        client, account_id=account_id, client_uuid=client_uuid, signature=signature
    )
    if not account_id.isdigit():
        raise connections.UninstallHookError("account_id is not a Kommo account id.")
    disabled = await connections.uninstall(services, account_id=int(account_id))
    return UninstallOut(disabled=disabled)
