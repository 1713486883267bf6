"""Signing in and out: the login form, the one-time-code step, logout."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from markupsafe import Markup
from starlette.responses import Response

from agent_platform.db.session import transaction
from agent_platform.organization.login import (
    AccountLockedError,
    LoginRefusedError,
    LoginResult,
    TooManyLoginAttemptsError,
    log_in,
)
from agent_platform.organization.totp import (
    InvalidTotpError,
    TotpEnrollment,
    enable_totp,
    new_enrollment,
    verify_totp,
)
from agent_platform.organization.web_sessions import end_session, pass_two_factor, start_session
from agent_platform.services import Services
from agent_platform.web import csrf
from agent_platform.web.auth import (
    SESSION_COOKIE,
    AwaitingTwoFactorUser,
    clear_session_cookie,
    safe_next_path,
    session_user,
    set_session_cookie,
)
from agent_platform.web.rendering import render
from agent_platform.web.repository import two_factor_enabled
from agent_platform.web.routing import TWO_FACTOR_PATH, PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# Form fields default to empty: a form posted without one is answered on the page, not with
# the API's JSON validation error.
FormText = Annotated[str, Form()]


def _login_page(
    request: Request,
    *,
    next_path: str,
    status: int,
    email: str = "",
    error: str | None = None,
    error_values: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "login.html",
        status_code=status,
        next_path=next_path,
        email=email,
        error=error,
        error_values=error_values or {},
    )


@router.get("/login")
async def login_form(request: Request, next: str = "/app") -> Response:
    user = await session_user(request)
    next_path = safe_next_path(next)
    if user is not None and user.two_factor_passed:
        return redirect(next_path)
    return _login_page(request, next_path=next_path, status=200)


@router.post("/login")
async def login(
    request: Request,
    email: FormText = "",
    password: FormText = "",
    next: FormText = "/app",
) -> Response:
    await csrf.check_pre_session(request)
    services: Services = request.app.state.services
    next_path = safe_next_path(next)
    try:
        result = await log_in(
            services, email=email.strip(), password=password, ip=client_ip(request)
        )
    except LoginRefusedError:
        return _login_page(
            request, next_path=next_path, email=email, error="login.refused", status=401
        )
    except AccountLockedError as locked:
        return _login_page(
            request,
            next_path=next_path,
            email=email,
            error=(
                "login.too_many_attempts"
                if isinstance(locked, TooManyLoginAttemptsError)
                else "login.locked"
            ),
            error_values={"until": f"{locked.until:%H:%M} UTC"},
            status=429,
        )
    return await signed_in(request, services, result, next_path)


def client_ip(request: Request) -> str | None:
    """The address a sign-in comes from (behind a trusted proxy, uvicorn has set it)."""
    return request.client.host if request.client else None


async def signed_in(
    request: Request, services: Services, result: LoginResult, next_path: str
) -> Response:
    """The session of a password accepted (sign-in, an invitation accepted): on to
    `next_path`, or first to the two-factor step when the user has one."""
    async with transaction(services.sessions) as session:
        issued = await start_session(
            session,
            user_id=result.user_id,
            organization_id=result.organization_id,
            ip=client_ip(request),
            user_agent=request.headers.get("user-agent"),
            two_factor_passed=not result.needs_totp,
        )
    response = redirect(
        f"{TWO_FACTOR_PATH}?{urlencode({'next': next_path})}" if result.needs_totp else next_path
    )
    set_session_cookie(request, response, issued)
    return response


def _two_factor_page(
    request: Request,
    *,
    next_path: str,
    enrollment: TotpEnrollment | None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The code form; with `enrollment`, first the QR code to set an authenticator app up."""
    return render(
        request,
        "two_factor.html",
        status_code=status,
        next_path=next_path,
        error=error,
        enrollment=enrollment,
        qr_svg=Markup(enrollment.qr_svg) if enrollment else None,  # noqa: S704 - segno's SVG, no user text
    )


@router.get(TWO_FACTOR_PATH)
async def two_factor_form(
    request: Request,
    user: AwaitingTwoFactorUser,
    next: str = "/app",
) -> Response:
    next_path = safe_next_path(next)
    if user.two_factor_passed:
        return redirect(next_path)
    services: Services = request.app.state.services
    async with transaction(services.sessions) as session:
        enabled = await two_factor_enabled(session, user.user_id)
    # Without TOTP yet, the organization's policy requires it: it is set up here, first.
    enrollment = None if enabled else new_enrollment(email=user.email)
    return _two_factor_page(request, next_path=next_path, enrollment=enrollment)


@router.post(TWO_FACTOR_PATH)
async def two_factor(
    request: Request,
    user: AwaitingTwoFactorUser,
    code: FormText = "",
    secret: FormText = "",
    next: FormText = "/app",
) -> Response:
    await csrf.check(request, user.csrf_token)
    next_path = safe_next_path(next)
    if user.two_factor_passed:
        return redirect(next_path)
    services: Services = request.app.state.services
    code = code.replace(" ", "")
    enrolling = False
    async with transaction(services.sessions) as session:
        if await two_factor_enabled(session, user.user_id):
            # An enabled secret is never replaced here: knowing the password is not enough.
            passed = await verify_totp(services, session, user.user_id, code)
        else:
            enrolling = True
            try:
                await enable_totp(services, session, user.user_id, secret, code)
                passed = True
            except InvalidTotpError:
                passed = False
        if passed:
            await pass_two_factor(session, user.session_id)
    if not passed:
        # A failed set-up starts over with a new secret: the page never echoes one back.
        return _two_factor_page(
            request,
            next_path=next_path,
            enrollment=new_enrollment(email=user.email) if enrolling else None,
            error="two_factor.setup_wrong_code" if enrolling else "two_factor.wrong_code",
            status=422,
        )
    return redirect(next_path)


@router.post("/logout")
async def logout(request: Request, user: AwaitingTwoFactorUser) -> Response:
    # A session still waiting for its code may be ended too: that is how one gives up on it.
    await csrf.check(request, user.csrf_token)
    services: Services = request.app.state.services
    async with transaction(services.sessions) as session:
        await end_session(session, request.cookies[SESSION_COOKIE])
    response = redirect("/login")
    clear_session_cookie(request, response)
    return response
