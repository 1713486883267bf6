"""`/api/v1/automation/runs`: every trigger firing, sequence step and rule evaluation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import AwareDatetime

from agent_platform.automation.models import RunKind, RunStatus
from agent_platform.automation.runs import queries
from agent_platform.automation.runs.queries import RunQuery
from agent_platform.automation.runs.schemas import RunOut
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import NotFoundError
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/automation/runs", tags=["automation runs"])

MAX_BIGINT = 2**63 - 1


class RunNotFoundError(NotFoundError):
    code = "run_not_found"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("", summary="Runs, newest first")
async def list_runs(
    request: Request,
    principal: CurrentPrincipal,
    kind: RunKind | None = None,
    run_status: Annotated[RunStatus | None, Query(alias="status")] = None,
    trigger_id: uuid.UUID | None = None,
    sequence_id: uuid.UUID | None = None,
    enrollment_id: uuid.UUID | None = None,
    rule_id: uuid.UUID | None = None,
    lead_id: Annotated[int | None, Query(ge=1, le=MAX_BIGINT)] = None,
    matched: bool | None = None,
    since: Annotated[AwareDatetime | None, Query(description="started at or after")] = None,
    until: Annotated[AwareDatetime | None, Query(description="started before")] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[RunOut]:
    query = RunQuery(
        kind=kind,
        status=run_status,
        trigger_id=trigger_id,
        sequence_id=sequence_id,
        enrollment_id=enrollment_id,
        rule_id=rule_id,
        lead_id=lead_id,
        matched=matched,
        since=since,
        until=until,
    )
    page = PageRequest.parse(limit, cursor)
    organization_id = principal.organization_id
    async with tenant_transaction(_services(request).sessions, organization_id) as session:
        found = page.cut(await queries.list_runs(session, organization_id, query, page))
    return Page[RunOut](
        items=[RunOut.of(run) for run in found.items], next_cursor=found.next_cursor
    )


@router.get("/{run_id}", summary="One run: its event, trace and each action's result")
async def get_run(request: Request, principal: CurrentPrincipal, run_id: uuid.UUID) -> RunOut:
    organization_id = principal.organization_id
    async with tenant_transaction(_services(request).sessions, organization_id) as session:
        run = await queries.run_of(session, organization_id, run_id)
    if run is None:
        raise RunNotFoundError(f"No run {run_id} in this organization.")
    return RunOut.of(run)
