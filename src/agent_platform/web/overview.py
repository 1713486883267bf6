"""/app: where a signed-in user lands — the dashboard of their organization: conversations,
replies, response time, handoffs, leads by stage, the month's LLM spend against the budget and
the job queue, with 7-day charts drawn on the server."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.dashboard.figures import dashboard_figures
from agent_platform.organization.permissions import Permission, require
from agent_platform.services import Services
from agent_platform.web.auth import CurrentUser
from agent_platform.web.dashboard_parts.view import dashboard_view
from agent_platform.web.i18n import request_language, translator
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/")
async def root() -> Response:
    return redirect("/app")


@router.get("/app")
async def dashboard(request: Request, user: CurrentUser) -> Response:
    require(user.role, Permission.VIEW_DASHBOARD)
    services: Services = request.app.state.services
    figures = await dashboard_figures(services, user.organization_id, now=datetime.now(UTC))
    language = request_language(request)
    return render(
        request, "app.html", dashboard=dashboard_view(figures, translator(language), language)
    )
