"""Pages: /app/team (members and their roles, pending invitations, the invite form), the public
invitation page (team_parts.acceptance), /app/api-keys (team_parts.api_keys) and /app/security
(team_parts.security)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import AppError, ConflictError
from agent_platform.organization.invitations import (
    InvalidInvitationError,
    cancel_invitation,
    create_invitation,
    pending_invitations,
)
from agent_platform.organization.members import (
    LastOwnerError,
    UnknownRoleError,
    change_role,
    list_members,
    member,
    remove_member,
)
from agent_platform.organization.models import Role
from agent_platform.organization.permissions import (
    ForbiddenError,
    Permission,
    allowed,
    require,
)
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect
from agent_platform.web.team_parts import acceptance, api_keys, security
from agent_platform.web.team_parts.forms import FormError, FormText, object_id, services_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(acceptance.router)
router.include_router(api_keys.router)
router.include_router(security.router)

TEAM_PATH = "/app/team"


def assignable_roles(user: SignedInUser) -> list[str]:
    """The roles `user` may give: an owner any, an admin any but owner."""
    return [role.value for role in Role if role is not Role.OWNER or user.role == Role.OWNER]


async def _team_page(
    request: Request,
    session: AsyncSession,
    user: SignedInUser,
    *,
    invitation_link: str | None = None,
    invited_email: str = "",
    email: str = "",
    role: str = Role.MEMBER.value,
    error: FormError | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "team/team.html",
        status_code=status,
        members=await list_members(session, user.organization_id),
        invitations=await pending_invitations(session, user.organization_id),
        can_manage=allowed(user.role, Permission.MANAGE_MEMBERS),
        is_owner=user.role == Role.OWNER,
        roles=assignable_roles(user),
        invitation_link=invitation_link,
        invited_email=invited_email,
        form_email=email,
        form_role=role,
        error=error,
    )


@router.get(TEAM_PATH)
async def team(request: Request, user: CurrentUser) -> Response:
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        return await _team_page(request, session, user)


def _refusal(error: AppError) -> FormError:
    """A refused invitation or membership change, in the reader's language."""
    field = error.details.get("field") if isinstance(error.details, dict) else None
    if isinstance(error, InvalidInvitationError):
        return FormError("team.error.invalid_email" if field == "email" else "team.error.no_role")
    if isinstance(error, UnknownRoleError):
        return FormError("team.error.no_role")
    if isinstance(error, LastOwnerError):
        return FormError("team.error.last_owner")
    if isinstance(error, ForbiddenError):
        return FormError("team.error.owner_only")
    return FormError("team.error.already_member")


@router.post(TEAM_PATH + "/invitations")
async def invite(
    request: Request, user: CsrfCheckedUser, email: FormText = "", role: FormText = ""
) -> Response:
    require(user.role, Permission.MANAGE_MEMBERS)
    services = services_of(request)
    try:
        async with tenant_transaction(services.sessions, user.organization_id) as session:
            invitation, token = await create_invitation(
                session,
                organization_id=user.organization_id,
                email=email,
                role=role,
                invited_by=user.user_id,
            )
    except (InvalidInvitationError, ConflictError, ForbiddenError) as refused:
        async with tenant_transaction(services.sessions, user.organization_id) as session:
            return await _team_page(
                request,
                session,
                user,
                email=email,
                role=role,
                error=_refusal(refused),
                status=refused.status_code,
            )
    # Shown this once: only the token's hash is stored, there is no email to resend it.
    link = f"{services.settings.public_base_url.rstrip('/')}/invitations/{token}"
    async with tenant_transaction(services.sessions, user.organization_id) as session:
        return await _team_page(
            request, session, user, invitation_link=link, invited_email=invitation.email
        )


@router.post(TEAM_PATH + "/invitations/{invitation_id}/cancel")
async def cancel(request: Request, user: CsrfCheckedUser, invitation_id: str) -> Response:
    require(user.role, Permission.MANAGE_MEMBERS)
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        await cancel_invitation(session, user.organization_id, object_id(invitation_id))
    return redirect(TEAM_PATH)


async def _refused_change(request: Request, user: SignedInUser, refused: AppError) -> Response:
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        return await _team_page(
            request, session, user, error=_refusal(refused), status=refused.status_code
        )


@router.post(TEAM_PATH + "/members/{membership_id}/role")
async def new_role(
    request: Request, user: CsrfCheckedUser, membership_id: str, role: FormText = ""
) -> Response:
    require(user.role, Permission.MANAGE_MEMBERS)
    try:
        async with tenant_transaction(
            services_of(request).sessions, user.organization_id
        ) as session:
            await change_role(
                session, user.organization_id, object_id(membership_id), role, acting_role=user.role
            )
    except (UnknownRoleError, LastOwnerError, ForbiddenError) as refused:
        return await _refused_change(request, user, refused)
    return redirect(TEAM_PATH)


@router.get(TEAM_PATH + "/members/{membership_id}/remove")
async def confirm_removal(request: Request, user: CurrentUser, membership_id: str) -> Response:
    require(user.role, Permission.MANAGE_MEMBERS)
    async with tenant_transaction(services_of(request).sessions, user.organization_id) as session:
        leaving = await member(session, user.organization_id, object_id(membership_id))
    return render(
        request,
        "team/confirm.html",
        active_nav="team",
        title_key="team.remove.title",
        question_key="team.remove.question",
        question_values={"who": leaving.name or leaving.email, "email": leaving.email},
        action=f"{TEAM_PATH}/members/{leaving.membership_id}/remove",
        confirm_key="team.remove.confirm",
        back=TEAM_PATH,
    )


@router.post(TEAM_PATH + "/members/{membership_id}/remove")
async def remove(request: Request, user: CsrfCheckedUser, membership_id: str) -> Response:
    require(user.role, Permission.MANAGE_MEMBERS)
    try:
        async with tenant_transaction(
            services_of(request).sessions, user.organization_id
        ) as session:
            await remove_member(
                session, user.organization_id, object_id(membership_id), acting_role=user.role
            )
    except (LastOwnerError, ForbiddenError) as refused:
        return await _refused_change(request, user, refused)
    return redirect(TEAM_PATH)
