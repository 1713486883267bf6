"""/app/automation: the organization's triggers, sequences and saved rules, each with its
on/off switch."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.automation.models import AutomationRule, Sequence, Trigger
from agent_platform.automation.rules.service import RULES, list_rules
from agent_platform.automation.sequences.service import SEQUENCES, list_sequences
from agent_platform.automation.triggers import service as triggers
from agent_platform.automation.triggers.repository import TriggerQuery
from agent_platform.kit.pagination import DEFAULT_LIMIT, PageRequest
from agent_platform.organization.permissions import Permission, allowed, require
from agent_platform.services import Services
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

Kind = Literal["triggers", "sequences", "rules"]


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/app/automation")
async def automation_index(
    request: Request,
    user: CurrentUser,
    triggers_cursor: str | None = None,
    sequences_cursor: str | None = None,
    rules_cursor: str | None = None,
) -> Response:
    services = _services(request)
    organization_id = user.organization_id
    found_triggers = await triggers.list_triggers(
        services,
        organization_id,
        TriggerQuery(),
        PageRequest.parse(DEFAULT_LIMIT, triggers_cursor),
    )
    found_sequences = await list_sequences(
        services, organization_id, None, None, PageRequest.parse(DEFAULT_LIMIT, sequences_cursor)
    )
    found_rules = await list_rules(
        services, organization_id, None, PageRequest.parse(DEFAULT_LIMIT, rules_cursor)
    )
    return render(
        request,
        "automation/index.html",
        triggers=found_triggers,
        sequences=found_sequences,
        rules=found_rules,
        can_manage=allowed(user.role, Permission.MANAGE_AUTOMATION),
    )


@router.post("/app/automation/{kind}/{row_id}/enabled")
async def switch(
    request: Request, user: CsrfCheckedUser, kind: Kind, row_id: uuid.UUID
) -> Response:
    """Turn a trigger, sequence or rule on or off; the switch itself is the answer to HTMX."""
    require(user.role, Permission.MANAGE_AUTOMATION)
    enabled = (await request.form()).get("enabled") == "true"
    services, organization_id = _services(request), user.organization_id
    row: Trigger | Sequence | AutomationRule
    if kind == "triggers":
        row = await triggers.TRIGGERS.set_enabled(services, organization_id, row_id, enabled)
    elif kind == "sequences":
        row = await SEQUENCES.set_enabled(services, organization_id, row_id, enabled)
    else:
        row = await RULES.set_enabled(services, organization_id, row_id, enabled)
    if request.headers.get("hx-request") == "true":
        return render(request, "automation/switch.html", kind=kind, row=row, can_manage=True)
    return redirect("/app/automation")
