"""/app: where a signed-in user lands: their organization, their role, what they can open."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.web.auth import CurrentUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/")
async def root() -> Response:
    return redirect("/app")


@router.get("/app")
async def overview(request: Request, user: CurrentUser) -> Response:
    return render(request, "app.html")
