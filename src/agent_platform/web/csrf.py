"""CSRF protection of every form the dashboard posts.

Signed in, a form carries its session's token (web_sessions.csrf_token). Before there is a
session (the login form, the language switch on it) it carries a signed double submit: a
random value in the `ap_csrf` cookie, and in the form that value's HMAC under SECRET_KEY. A
site that can plant cookies for our domain still cannot produce the matching form value.
HTMX requests may send the token in the X-CSRF-Token header instead of a form field.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from agent_platform.services import Services

FORM_FIELD = "csrf_token"
HEADER = "x-csrf-token"
PRE_SESSION_COOKIE = "ap_csrf"
_PLAUSIBLE_COOKIE = re.compile(r"^[A-Za-z0-9_-]{32,64}$")


class CsrfRefusedError(Exception):
    """A form posted without its token, or with another one: answered with a 403 page."""


def pre_session_cookie(request: Request) -> str:
    """The browser's pre-session value, or a new one for render() to set."""
    existing = request.cookies.get(PRE_SESSION_COOKIE, "")
    return existing if _PLAUSIBLE_COOKIE.match(existing) else secrets.token_urlsafe(32)


def pre_session_token(request: Request, cookie_value: str) -> str:
    services: Services = request.app.state.services
    secret_key = services.settings.secret_key
    assert secret_key is not None, "ensure_secrets() provides it"
    return hmac.new(
        secret_key.get_secret_value().encode(),
        f"pre-session-csrf:{cookie_value}".encode(),
        hashlib.sha256,
    ).hexdigest()


def set_pre_session_cookie(request: Request, response: Response, cookie_value: str) -> None:
    if request.cookies.get(PRE_SESSION_COOKIE) == cookie_value:
        return
    response.set_cookie(
        PRE_SESSION_COOKIE,
        cookie_value,
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )


async def presented_token(request: Request) -> str:
    header = request.headers.get(HEADER)
    if header:
        return header
    form = await request.form()
    value = form.get(FORM_FIELD)
    return "" if value is None or isinstance(value, UploadFile) else value


async def check(request: Request, *expected: str) -> None:
    """Refuse the request unless it presents one of the `expected` tokens."""
    presented = (await presented_token(request)).encode()
    matches = (hmac.compare_digest(presented, token.encode()) for token in expected)
    if not presented or not any(matches):
        raise CsrfRefusedError


def pre_session_expected(request: Request) -> str | None:
    """The token a form rendered before signing in carries, if the browser has the cookie."""
    cookie_value = request.cookies.get(PRE_SESSION_COOKIE, "")
    if not _PLAUSIBLE_COOKIE.match(cookie_value):
        return None
    return pre_session_token(request, cookie_value)


async def check_pre_session(request: Request) -> None:
    expected = pre_session_expected(request)
    if expected is None:
        raise CsrfRefusedError
    await check(request, expected)
