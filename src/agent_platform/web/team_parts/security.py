"""/app/security: the user's own two-factor sign-in (turned on with an authenticator app's
code, turned off only with a current code) and, for an owner, the organization's rule that
owners and admins must use it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from agent_platform.db.session import transaction
from agent_platform.organization.permissions import Permission, allowed, require
from agent_platform.organization.totp import (
    InvalidTotpError,
    disable_totp,
    enable_totp,
    new_enrollment,
    organization_requires_two_factor,
    set_two_factor_requirement,
    two_factor_mandatory_for,
    verify_totp,
)
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.rendering import render
from agent_platform.web.repository import two_factor_enabled
from agent_platform.web.routing import PageRoute, redirect
from agent_platform.web.team_parts.forms import FormError, FormText, services_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SECURITY_PATH = "/app/security"


async def _security_page(
    request: Request,
    session: AsyncSession,
    user: SignedInUser,
    *,
    error: FormError | None = None,
    status: int = 200,
) -> Response:
    enabled = await two_factor_enabled(session, user.user_id)
    # A set-up that failed starts over with a new secret: the page never echoes one back.
    enrollment = None if enabled else new_enrollment(email=user.email)
    return render(
        request,
        "team/security.html",
        status_code=status,
        two_factor_on=enabled,
        enrollment=enrollment,
        qr_svg=Markup(enrollment.qr_svg) if enrollment else None,  # noqa: S704 - segno's SVG, no user text
        mandatory=await two_factor_mandatory_for(session, user.organization_id, user.role),
        can_set_policy=allowed(user.role, Permission.MANAGE_SECURITY),
        policy_on=await organization_requires_two_factor(session, user.organization_id),
        error=error,
    )


@router.get(SECURITY_PATH)
async def security(request: Request, user: CurrentUser) -> Response:
    async with transaction(services_of(request).sessions) as session:
        return await _security_page(request, session, user)


@router.post(SECURITY_PATH + "/two-factor/enable")
async def turn_on(
    request: Request, user: CsrfCheckedUser, secret: FormText = "", code: FormText = ""
) -> Response:
    services = services_of(request)
    try:
        async with transaction(services.sessions) as session:
            # An enabled secret is never replaced: turning it off first takes a current code.
            if not await two_factor_enabled(session, user.user_id):
                await enable_totp(services, session, user.user_id, secret, code)
    except InvalidTotpError:
        async with transaction(services.sessions) as session:
            return await _security_page(
                request,
                session,
                user,
                error=FormError("team.security.setup_wrong_code"),
                status=422,
            )
    return redirect(SECURITY_PATH)


@router.post(SECURITY_PATH + "/two-factor/disable")
async def turn_off(request: Request, user: CsrfCheckedUser, code: FormText = "") -> Response:
    services = services_of(request)
    async with transaction(services.sessions) as session:
        if await two_factor_mandatory_for(session, user.organization_id, user.role):
            return await _security_page(
                request, session, user, error=FormError("team.security.mandatory"), status=409
            )
        # A wrong code counts toward the sign-in lockout, so it is committed like a success.
        passed = await verify_totp(services, session, user.user_id, code)
        if passed:
            await disable_totp(services, session, user.user_id)
    if not passed:
        async with transaction(services.sessions) as session:
            return await _security_page(
                request, session, user, error=FormError("team.security.wrong_code"), status=422
            )
    return redirect(SECURITY_PATH)


@router.post(SECURITY_PATH + "/policy")
async def policy(request: Request, user: CsrfCheckedUser, required: FormText = "") -> Response:
    require(user.role, Permission.MANAGE_SECURITY)
    async with transaction(services_of(request).sessions) as session:
        await set_two_factor_requirement(session, user.organization_id, required=required == "true")
    return redirect(SECURITY_PATH)
