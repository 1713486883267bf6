"""Who is looking at a page: the web session behind the `ap_session` cookie.

A page takes `user: CurrentUser`; a POST handler takes `user: CsrfCheckedUser`, which also
checks the form's CSRF token. Without a session a page redirects to /login?next=…, with a
session still waiting for its second factor to /login/two-factor (see web.routing.PageRoute).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from starlette.responses import Response

from agent_platform.db.session import transaction
from agent_platform.organization.auth import Principal
from agent_platform.organization.web_sessions import IssuedSession, active_session
from agent_platform.services import Services
from agent_platform.web import csrf
from agent_platform.web.repository import organization_name

SESSION_COOKIE = "ap_session"


@dataclass(frozen=True)
class SignedInUser:
    session_id: uuid.UUID
    user_id: uuid.UUID
    organization_id: uuid.UUID
    organization_name: str
    role: str
    email: str
    name: str
    csrf_token: str
    two_factor_passed: bool

    def as_principal(self) -> Principal:
        """The user as the domain services' caller: versions and the activity log record
        the user (`user:<id>`) as the one who did it."""
        return Principal(
            organization_id=self.organization_id,
            scopes=frozenset({"read", "write"}),
            user_id=self.user_id,
        )


class SignInRequiredError(Exception):
    """No valid session: the page redirects to the login form, then back to `next_path`."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class TwoFactorRequiredError(Exception):
    """Signed in with the password, but the one-time code is still to be given."""


async def session_user(request: Request) -> SignedInUser | None:
    """The session's user, whether or not the second factor is passed; once per request."""
    if hasattr(request.state, "session_user"):
        found: SignedInUser | None = request.state.session_user
        return found
    found = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        services: Services = request.app.state.services
        async with transaction(services.sessions) as session:
            active = await active_session(session, token, now=datetime.now(UTC))
            if active is not None:
                found = SignedInUser(
                    session_id=active.id,
                    user_id=active.user_id,
                    organization_id=active.organization_id,
                    organization_name=await organization_name(session, active.organization_id),
                    role=active.role,
                    email=active.email,
                    name=active.name,
                    csrf_token=active.csrf_token,
                    two_factor_passed=active.two_factor_passed,
                )
    request.state.session_user = found
    return found


def _requested_path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def signed_in_user(request: Request) -> SignedInUser:
    user = await session_user(request)
    if user is None:
        raise SignInRequiredError(_requested_path(request))
    if not user.two_factor_passed:
        raise TwoFactorRequiredError
    # render() shows the navigation and uses the session's CSRF token for this user.
    request.state.user = user
    return user


async def csrf_checked_user(request: Request) -> SignedInUser:
    user = await signed_in_user(request)
    await csrf.check(request, user.csrf_token)
    return user


async def awaiting_two_factor_user(request: Request) -> SignedInUser:
    """The user of a session that has the password but not yet the one-time code."""
    user = await session_user(request)
    if user is None:
        raise SignInRequiredError("/app")
    request.state.user = user
    return user


CurrentUser = Annotated[SignedInUser, Depends(signed_in_user)]
CsrfCheckedUser = Annotated[SignedInUser, Depends(csrf_checked_user)]
AwaitingTwoFactorUser = Annotated[SignedInUser, Depends(awaiting_two_factor_user)]


def set_session_cookie(request: Request, response: Response, issued: IssuedSession) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        issued.token,
        max_age=max(0, int((issued.expires_at - datetime.now(UTC)).total_seconds())),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )


def safe_next_path(value: str | None, default: str = "/app") -> str:
    """A redirect target within this site only: a path, never `//host` or `/\\host`.

    Browsers drop tabs and newlines from URLs and read a backslash as a slash, so a value
    holding either could become `//host`: such a value is refused too.
    """
    if not value or not value.startswith("/") or value.startswith("//"):
        return default
    if "\\" in value or any(character.isspace() or ord(character) < 32 for character in value):
        return default
    return value
