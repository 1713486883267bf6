"""POST /lang: the language switch, remembered in the `lang` cookie for a year."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from agent_platform.web import csrf
from agent_platform.web.auth import safe_next_path, session_user
from agent_platform.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


@router.post("/lang")
async def switch_language(
    request: Request,
    lang: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/app",
) -> Response:
    # The switch is on every page: on a signed-in user's pages it carries the session's
    # token, on the login form (shown also to a session awaiting its code) the pre-session one.
    user = await session_user(request)
    pre_session = csrf.pre_session_expected(request)
    expected = [token for token in (pre_session, user.csrf_token if user else None) if token]
    await csrf.check(request, *expected)
    response = redirect(safe_next_path(next))
    if lang in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            lang,
            max_age=LANGUAGE_COOKIE_SECONDS,
            secure=request.url.scheme == "https",
            samesite="lax",
            path="/",
        )
    return response
