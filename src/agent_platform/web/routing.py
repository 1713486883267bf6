"""PageRoute: what a page answers when its dependencies refuse the request.

Every dashboard router is `APIRouter(route_class=PageRoute)`: a page without a session
redirects to the login form, a refused CSRF token or a service's AppError becomes an HTML
error page in the reader's language, where the REST API would answer JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from agent_platform.kit.errors import AppError
from agent_platform.web.auth import SignInRequiredError, TwoFactorRequiredError
from agent_platform.web.csrf import CsrfRefusedError
from agent_platform.web.rendering import render

TWO_FACTOR_PATH = "/login/two-factor"


def redirect(path: str) -> RedirectResponse:
    # 303: the browser follows with a GET, also after a POST.
    return RedirectResponse(path, status_code=303)


class PageRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_page(request: Request) -> Response:
            try:
                return await handle(request)
            except SignInRequiredError as refused:
                return redirect("/login?" + urlencode({"next": refused.next_path}))
            except TwoFactorRequiredError:
                return redirect(TWO_FACTOR_PATH)
            except CsrfRefusedError:
                return render(
                    request,
                    "error.html",
                    status_code=403,
                    title_key="error.csrf_title",
                    message_key="error.csrf_message",
                    message_text=None,
                )
            except AppError as error:
                return render(
                    request,
                    "error.html",
                    status_code=error.status_code,
                    title_key="error.title",
                    message_key=None,
                    message_text=error.message,
                )

        return handle_page
