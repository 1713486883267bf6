"""/app/api-keys: the organization's keys for the REST API — created (the key shown once),
listed with their prefix, scopes and last use, revoked after a confirmation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from agent_platform.db.session import tenant_transaction
from agent_platform.organization.api_keys import (
    API_KEY_SCOPES,
    CreatedApiKey,
    InvalidApiKeyError,
    create_api_key,
    get_api_key,
    list_api_keys,
    revoke_api_key,
)
from agent_platform.organization.permissions import Permission, require
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect
from agent_platform.web.team_parts.forms import (
    FormChoices,
    FormError,
    FormText,
    object_id,
    services_of,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)

API_KEYS_PATH = "/app/api-keys"
SCOPES = sorted(API_KEY_SCOPES)


async def _keys_page(
    request: Request,
    session: AsyncSession,
    user: SignedInUser,
    *,
    created: CreatedApiKey | None = None,
    name: str = "",
    scopes: list[str] | None = None,
    error: FormError | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "team/api_keys.html",
        status_code=status,
        keys=await list_api_keys(session, user.organization_id),
        created=created,
        all_scopes=SCOPES,
        form_name=name,
        form_scopes=["read"] if scopes is None else scopes,
        error=error,
    )


@router.get(API_KEYS_PATH)
async def api_keys(request: Request, user: CurrentUser) -> Response:
    require(user.role, Permission.MANAGE_API_KEYS)
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        return await _keys_page(request, session, user)


@router.post(API_KEYS_PATH)
async def create(
    request: Request, user: CsrfCheckedUser, name: FormText = "", scopes: FormChoices = None
) -> Response:
    require(user.role, Permission.MANAGE_API_KEYS)
    sessions = services_of(request).sessions
    chosen = scopes or []
    try:
        async with tenant_transaction(sessions, user.organization_id) as session:
            created = await create_api_key(
                session,
                organization_id=user.organization_id,
                name=name,
                scopes=chosen,
                created_by=user.user_id,
            )
    except InvalidApiKeyError as refused:
        field = refused.details.get("field") if isinstance(refused.details, dict) else None
        error = FormError(
            "team.api_keys.error_scopes" if field == "scopes" else "team.api_keys.error_name"
        )
        async with tenant_transaction(sessions, user.organization_id) as session:
            return await _keys_page(
                request, session, user, name=name, scopes=chosen, error=error, status=422
            )
    # The key is in this one response only: the database keeps its hash.
    async with tenant_transaction(sessions, user.organization_id) as session:
        return await _keys_page(request, session, user, created=created)


@router.get(API_KEYS_PATH + "/{api_key_id}/revoke")
async def confirm_revocation(request: Request, user: CurrentUser, api_key_id: str) -> Response:
    require(user.role, Permission.MANAGE_API_KEYS)
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        key = await get_api_key(session, user.organization_id, object_id(api_key_id))
    return render(
        request,
        "team/confirm.html",
        active_nav="api_keys",
        title_key="team.api_keys.revoke_title",
        question_key="team.api_keys.revoke_question",
        question_values={"name": key.name, "prefix": key.prefix},
        action=f"{API_KEYS_PATH}/{key.id}/revoke",
        confirm_key="team.api_keys.revoke_confirm",
        back=API_KEYS_PATH,
    )


@router.post(API_KEYS_PATH + "/{api_key_id}/revoke")
async def revoke(request: Request, user: CsrfCheckedUser, api_key_id: str) -> Response:
    require(user.role, Permission.MANAGE_API_KEYS)
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        await revoke_api_key(session, user.organization_id, object_id(api_key_id))
    return redirect(API_KEYS_PATH)
