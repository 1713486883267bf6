"""/invitations/{token}: the public page where an invited person joins the organization.

No session is needed: a new user chooses a name and a password (the password policy applies)
and is signed in at once; a person who already has an account keeps their password and is
sent to the login form. An unknown, used or expired link gets a page that says which.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.kit.errors import AppError
from agent_platform.organization.invitations import (
    InvitationExpiredError,
    InvitationPreview,
    InvitationUsedError,
    WeakPasswordError,
    accept_invitation,
    preview_invitation,
)
from agent_platform.organization.login import log_in
from agent_platform.organization.passwords import MAX_LENGTH, MIN_LENGTH
from agent_platform.web import csrf
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect
from agent_platform.web.sign_in import client_ip, signed_in
from agent_platform.web.team_parts.forms import FormError, FormText, services_of

router = APIRouter(route_class=PageRoute, include_in_schema=False)

INVITATION_PATH = "/invitations/{token}"
MAX_NAME_LENGTH = 200


def _closed_page(request: Request, refused: AppError) -> Response:
    if isinstance(refused, InvitationExpiredError):
        reason = "expired"
    elif isinstance(refused, InvitationUsedError):
        reason = "used"
    else:
        reason = "unknown"
    return render(
        request,
        "team/invitation_closed.html",
        status_code=refused.status_code,
        reason=reason,
    )


def _form_page(
    request: Request,
    preview: InvitationPreview,
    *,
    name: str = "",
    error: FormError | None = None,
    status: int = 200,
) -> Response:
    return render(
        request,
        "team/invitation.html",
        status_code=status,
        invitation=preview,
        name=name,
        error=error,
    )


@router.get(INVITATION_PATH)
async def invitation(request: Request, token: str) -> Response:
    try:
        preview = await preview_invitation(services_of(request), token)
    except AppError as refused:
        return _closed_page(request, refused)
    return _form_page(request, preview)


@router.post(INVITATION_PATH)
async def accept(
    request: Request,
    token: str,
    name: FormText = "",
    password: FormText = "",
    password_again: FormText = "",
) -> Response:
    await csrf.check_pre_session(request)
    services = services_of(request)
    try:
        preview = await preview_invitation(services, token)
    except AppError as refused:
        return _closed_page(request, refused)
    name = name.strip()
    if not preview.has_account:
        problem = None
        if not name or len(name) > MAX_NAME_LENGTH:
            problem = FormError("team.invitation.name_needed")
        elif password != password_again:
            problem = FormError("team.invitation.passwords_differ")
        if problem is not None:
            return _form_page(request, preview, name=name, error=problem, status=422)
    try:
        await accept_invitation(services, token, name=name, password=password)
    except WeakPasswordError as weak:
        rule = weak.details["rule"]
        values = {"min": str(MIN_LENGTH), "max": str(MAX_LENGTH)}
        error = FormError(f"team.invitation.password_{rule}", values)
        return _form_page(request, preview, name=name, error=error, status=422)
    except AppError as refused:
        return _closed_page(request, refused)
    if preview.has_account:
        return redirect("/login?" + urlencode({"next": "/app"}))
    try:
        result = await log_in(
            services, email=preview.email, password=password, ip=client_ip(request)
        )
    except AppError:
        # Joined, but not signed in here (a limit of sign-in attempts): the login form will.
        return redirect("/login?" + urlencode({"next": "/app"}))
    return await signed_in(request, services, result, "/app")
