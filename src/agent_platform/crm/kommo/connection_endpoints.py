"""Kommo connections over HTTP: OAuth start and callback, long-lived tokens, listing, reply
settings, disconnecting, and Kommo's "integration uninstalled" hook.

Tokens and the Chats channel secret never leave in a response: an answer says whether one is
held, not what it is.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from agent_platform.crm.kommo import connections
from agent_platform.crm.kommo.connections import (
    AuthorizationDeclinedError,
    InvalidSignatureError,
)
from agent_platform.crm.kommo.reply_settings import ReplySettingsChange, change_reply_settings
from agent_platform.crm.models import ConnectionStatus, CrmConnection, ReplyChannel
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(tags=["kommo connections"])

MASK = "********"
MAX_UNINSTALL_FORM_BYTES = 10_000


class AuthorizationStartOut(BaseModel):
    authorize_url: str
    state: str
    expires_at: datetime


WebhookStatus = Literal["subscribed", "pending", "failed", "none"]


class WebhookOut(BaseModel):
    status: WebhookStatus = Field(
        description="subscribed: Kommo sends the account's events here; pending: the "
        "subscription job has not run yet; failed: see `error`; none: not subscribed."
    )
    destination: str | None
    subscribed_at: datetime | None
    error: str | None

    @classmethod
    def of(cls, connection: CrmConnection) -> WebhookOut:
        if connection.webhook_subscribed_at is not None:
            status: WebhookStatus = "subscribed"
        elif connection.webhook_error is not None:
            status = "failed"
        elif connection.status == ConnectionStatus.ACTIVE.value:
            status = "pending"
        else:
            status = "none"
        return cls(
            status=status,
            destination=connection.webhook_destination,
            subscribed_at=connection.webhook_subscribed_at,
            error=connection.webhook_error,
        )


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
    reply_channel: ReplyChannel
    chats_scope_id: str | None
    chats_secret: str | None = Field(description="Masked: whether a secret is held.")
    chats_bot_id: str | None
    chats_api_url: str | None
    webhook: WebhookOut
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
            reply_channel=ReplyChannel(connection.reply_channel),
            chats_scope_id=connection.chats_scope_id,
            chats_secret=MASK if connection.chats_secret_encrypted else None,
            chats_bot_id=connection.chats_bot_id,
            chats_api_url=connection.chats_api_url,
            webhook=WebhookOut.of(connection),
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


class ReplySettingsIn(BaseModel):
    """Only the fields given change; null clears one (but a connection always has a channel)."""

    model_config = ConfigDict(extra="forbid")

    reply_channel: ReplyChannel | None = Field(
        default=None,
        description="note: a draft on the lead for a manager; chats: a chat message through "
        "the Chats API channel (needs its scope id, secret and bot id); salesbot: the answer "
        "to the Salesbot's widget_request.",
    )
    agent_id: uuid.UUID | None = Field(
        default=None, description="The organization's agent that answers this account."
    )
    chats_scope_id: str | None = Field(default=None, min_length=1, max_length=255)
    chats_secret: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="Write-only: stored encrypted, answered masked.",
    )
    chats_bot_id: str | None = Field(default=None, min_length=1, max_length=255)
    chats_api_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://[^\s/?#]+[^\s?#]*$",
        description="Default: amojo.kommo.com (amojo.amocrm.ru for amoCRM accounts).",
    )

    @model_validator(mode="after")
    def _channel_not_cleared(self) -> ReplySettingsIn:
        if "reply_channel" in self.model_fields_set and self.reply_channel is None:
            raise ValueError("reply_channel cannot be null: choose note, chats or salesbot")
        return self

    def change(self) -> ReplySettingsChange:
        return ReplySettingsChange(
            given=frozenset(self.model_fields_set),
            reply_channel=self.reply_channel,
            agent_id=self.agent_id,
            chats_scope_id=self.chats_scope_id,
            chats_secret=self.chats_secret.get_secret_value() if self.chats_secret else None,
            chats_bot_id=self.chats_bot_id,
            chats_api_url=self.chats_api_url,
        )


class DisconnectionOut(BaseModel):
    connection: ConnectionOut
    webhook_removed: bool = Field(description="Whether no webhook of ours is left in Kommo.")
    note: str | None = Field(description="When it may be left: why, and what to do.")


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


@router.patch(
    "/api/v1/integrations/kommo/connections/{connection_id}",
    summary="Choose how a connection answers: reply channel, Chats settings, agent",
)
async def change_connection(
    request: Request, principal: CurrentPrincipal, connection_id: uuid.UUID, body: ReplySettingsIn
) -> ConnectionOut:
    connection = await change_reply_settings(
        _services(request), principal.organization_id, connection_id, body.change()
    )
    return ConnectionOut.of(connection)


@router.delete(
    "/api/v1/integrations/kommo/connections/{connection_id}",
    summary="Disconnect a Kommo account: remove our webhook, forget the tokens, keep history",
)
async def disconnect_connection(
    request: Request, principal: CurrentPrincipal, connection_id: uuid.UUID
) -> DisconnectionOut:
    """Disconnects even when Kommo cannot be reached or refuses the token; `note` then says
    that our webhook may still be in the account. Connecting the account again resumes it."""
    disconnection = await connections.disconnect(
        _services(request), principal.organization_id, connection_id
    )
    return DisconnectionOut(
        connection=ConnectionOut.of(disconnection.connection),
        webhook_removed=disconnection.webhook.removed,
        note=disconnection.webhook.note,
    )


_UNINSTALL_SUMMARY = "Kommo's hook: the integration was uninstalled from an account"


# Two routes, not one with two methods: OpenAPI needs an operation id per method.
@router.get(
    "/webhooks/kommo/uninstall", summary=_UNINSTALL_SUMMARY, operation_id="kommo_uninstalled"
)
@router.post(
    "/webhooks/kommo/uninstall", summary=_UNINSTALL_SUMMARY, operation_id="kommo_uninstalled_form"
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
