"""/app/automation/sequences/{id}: a sequence's steps and stop conditions, and who walks it."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.automation.sequences.service import SEQUENCES, list_enrollments
from agent_platform.kit.pagination import DEFAULT_LIMIT, PageRequest
from agent_platform.organization.permissions import Permission, allowed
from agent_platform.services import Services
from agent_platform.web.auth import CurrentUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/app/automation/sequences/{sequence_id}")
async def sequence_page(
    request: Request, user: CurrentUser, sequence_id: uuid.UUID, cursor: str | None = None
) -> Response:
    services: Services = request.app.state.services
    sequence = await SEQUENCES.get(services, user.organization_id, sequence_id)
    enrollments = await list_enrollments(
        services, user.organization_id, sequence_id, None, PageRequest.parse(DEFAULT_LIMIT, cursor)
    )
    return render(
        request,
        "automation/sequence.html",
        sequence=sequence,
        enrollments=enrollments,
        can_manage=allowed(user.role, Permission.MANAGE_AUTOMATION),
    )
