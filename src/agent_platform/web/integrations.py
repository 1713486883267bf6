"""Pages: integrations (/app/integrations: Kommo connections) and operations (/app/operations:
health, queue, recent errors). The pages themselves live in web.integration_pages."""

from __future__ import annotations

from fastapi import APIRouter

from agent_platform.web.integration_pages import connections, operations
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(connections.router)
router.include_router(operations.router)
