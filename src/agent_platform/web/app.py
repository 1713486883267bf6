"""The dashboard as mounted by agent_platform.app: its pages' router and its static files.

A new page is a module with `router = APIRouter(route_class=PageRoute)`, included below.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from starlette.staticfiles import StaticFiles

from agent_platform.web import (
    agents,
    automation,
    conversations,
    integrations,
    language,
    overview,
    sign_in,
    team,
)

STATIC_PATH = "/static"

router = APIRouter(include_in_schema=False)
router.include_router(sign_in.router)
router.include_router(overview.router)
router.include_router(language.router)
router.include_router(agents.router)
router.include_router(automation.router)
router.include_router(conversations.router)
router.include_router(integrations.router)
router.include_router(team.router)


def static_files() -> StaticFiles:
    return StaticFiles(directory=Path(str(resources.files("agent_platform.web") / "static")))
