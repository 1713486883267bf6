"""`/api/v1/triggers`, and `/api/v1/automation/webhook-secret` (how receivers of the webhook
action check its signature)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from agent_platform.automation.events import EventType
from agent_platform.automation.triggers import service
from agent_platform.automation.triggers.repository import TriggerQuery
from agent_platform.automation.triggers.schemas import (
    ManualRunIn,
    ManualRunOut,
    TriggerDryRunIn,
    TriggerDryRunOut,
    TriggerIn,
    TriggerOut,
    TriggerPatch,
    WebhookSecretOut,
)
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/triggers", tags=["automation triggers"])
webhook_secret_router = APIRouter(prefix="/api/v1/automation", tags=["automation triggers"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a trigger")
async def create_trigger(
    request: Request, principal: CurrentPrincipal, body: TriggerIn
) -> TriggerOut:
    trigger = await service.create_trigger(_services(request), principal.organization_id, body)
    return TriggerOut.of(trigger)


@router.get("", summary="This organization's triggers, newest first")
async def list_triggers(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: uuid.UUID | None = None,
    event_type: EventType | None = None,
    enabled: bool | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[TriggerOut]:
    query = TriggerQuery(
        agent_id=agent_id,
        event_type=None if event_type is None else event_type.value,
        enabled=enabled,
    )
    found = await service.list_triggers(
        _services(request), principal.organization_id, query, PageRequest.parse(limit, cursor)
    )
    return Page[TriggerOut](
        items=[TriggerOut.of(trigger) for trigger in found.items], next_cursor=found.next_cursor
    )


@router.get("/{trigger_id}", summary="One trigger")
async def get_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID
) -> TriggerOut:
    trigger = await service.TRIGGERS.get(_services(request), principal.organization_id, trigger_id)
    return TriggerOut.of(trigger)


@router.patch("/{trigger_id}", summary="Change a trigger (only the fields sent)")
async def update_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID, body: TriggerPatch
) -> TriggerOut:
    trigger = await service.update_trigger(
        _services(request), principal.organization_id, trigger_id, body
    )
    return TriggerOut.of(trigger)


@router.delete("/{trigger_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a trigger")
async def delete_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID
) -> Response:
    await service.delete_trigger(_services(request), principal.organization_id, trigger_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{trigger_id}/enable", summary="Enable a trigger")
async def enable_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID
) -> TriggerOut:
    trigger = await service.TRIGGERS.set_enabled(
        _services(request), principal.organization_id, trigger_id, True
    )
    return TriggerOut.of(trigger)


@router.post("/{trigger_id}/disable", summary="Disable a trigger")
async def disable_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID
) -> TriggerOut:
    trigger = await service.TRIGGERS.set_enabled(
        _services(request), principal.organization_id, trigger_id, False
    )
    return TriggerOut.of(trigger)


@router.post(
    "/{trigger_id}/dry-run",
    summary="Evaluate a trigger on a sample event: what it would do (nothing is done)",
)
async def dry_run_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID, body: TriggerDryRunIn
) -> TriggerDryRunOut:
    found = await service.dry_run_trigger(
        _services(request), principal.organization_id, trigger_id, body.event
    )
    return TriggerDryRunOut(
        matched=found.evaluation.matched,
        trace=found.evaluation.trace,
        facts=dict(found.facts.current),
        would_perform=found.would_perform,
    )


@router.post(
    "/{trigger_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a trigger by hand for a lead (a `manual` event, dispatched by a job)",
)
async def run_trigger(
    request: Request, principal: CurrentPrincipal, trigger_id: uuid.UUID, body: ManualRunIn
) -> ManualRunOut:
    job_id = await service.run_manually(
        _services(request), principal.organization_id, trigger_id, body
    )
    return ManualRunOut(job_id=job_id)


@webhook_secret_router.get(
    "/webhook-secret", summary="The key that signs this organization's webhook calls"
)
async def get_webhook_secret(request: Request, principal: CurrentPrincipal) -> WebhookSecretOut:
    return WebhookSecretOut(
        secret=service.webhook_secret(_services(request), principal.organization_id)
    )
