"""Pages from Jinja2 templates: autoescaped, translated, with the CSRF token at hand."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from agent_platform.web import csrf
from agent_platform.web.i18n import LANGUAGE_NAMES, request_language, translator


@cache
def environment() -> Environment:
    # Autoescape always, not by file extension: every value a template prints is text unless
    # the code marks it Markup. StrictUndefined turns a misspelt variable into an error in
    # tests instead of an empty spot on a page.
    return Environment(
        loader=PackageLoader("agent_platform.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """`template` as the response, with what every page uses in its context:

    `t(key, **values)` (the request's language), `lang`, `languages`, `user` (the signed-in
    user or None), `csrf_token` and `csrf_field` (the hidden input every POST form carries),
    `current_path` (where the language switch comes back to).
    """
    language = request_language(request)
    user = getattr(request.state, "user", None)
    pre_session_cookie = None
    if user is not None:
        token = user.csrf_token
    else:
        pre_session_cookie = csrf.pre_session_cookie(request)
        token = csrf.pre_session_token(request, pre_session_cookie)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    page = (
        environment()
        .get_template(template)
        .render(
            request=request,
            t=translator(language),
            lang=language,
            languages=LANGUAGE_NAMES,
            user=user,
            csrf_token=token,
            csrf_field=Markup('<input type="hidden" name="{}" value="{}">').format(
                csrf.FORM_FIELD, token
            ),
            current_path=path,
            **context,
        )
    )
    response = HTMLResponse(page, status_code=status_code)
    if pre_session_cookie is not None:
        csrf.set_pre_session_cookie(request, response, pre_session_cookie)
    return response
