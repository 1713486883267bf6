"""/app/automation/runs: the run log, filtered and paged; each run with its trace."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.automation.models import RunKind, RunStatus
from agent_platform.automation.runs import queries
from agent_platform.automation.runs.queries import RunQuery
from agent_platform.automation.triggers import service as triggers
from agent_platform.automation.triggers.repository import TriggerQuery
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.kit.pagination import DEFAULT_LIMIT, MAX_LIMIT, PageRequest
from agent_platform.services import Services
from agent_platform.web.auth import CurrentUser
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

MAX_BIGINT = 2**63 - 1


class InvalidRunFilterError(AppError):
    status_code = 422
    code = "invalid_run_filter"


@dataclass(frozen=True)
class RunFilters:
    """The filters as the form shows them (text), and the query they make."""

    kind: str = ""
    status: str = ""
    trigger: str = ""
    lead: str = ""

    def query(self) -> RunQuery:
        try:
            return RunQuery(
                kind=RunKind(self.kind) if self.kind else None,
                status=RunStatus(self.status) if self.status else None,
                trigger_id=uuid.UUID(self.trigger) if self.trigger else None,
                lead_id=self._lead(),
            )
        except ValueError as error:
            raise InvalidRunFilterError(
                f"This filter is not one the run log knows: {error}"
            ) from error

    def _lead(self) -> int | None:
        if not self.lead.strip():
            return None
        lead_id = int(self.lead.strip())
        if not 1 <= lead_id <= MAX_BIGINT:
            raise ValueError(f"lead {lead_id} is out of range")
        return lead_id

    def next_page(self, cursor: str) -> str:
        chosen = {name: value for name, value in vars(self).items() if value}
        return "/app/automation/runs?" + urlencode({**chosen, "cursor": cursor})


@router.get("/app/automation/runs")
async def runs_page(
    request: Request,
    user: CurrentUser,
    kind: str = "",
    status: str = "",
    trigger: str = "",
    lead: str = "",
    cursor: str | None = None,
) -> Response:
    services: Services = request.app.state.services
    filters = RunFilters(kind=kind, status=status, trigger=trigger, lead=lead)
    query = filters.query()
    page = PageRequest.parse(DEFAULT_LIMIT, cursor)
    organization_id = user.organization_id
    async with tenant_transaction(services.sessions, organization_id) as session:
        found = page.cut(await queries.list_runs(session, organization_id, query, page))
    trigger_choices = await triggers.list_triggers(
        services, organization_id, TriggerQuery(), PageRequest(limit=MAX_LIMIT)
    )
    return render(
        request,
        "automation/runs.html",
        runs=found,
        filters=filters,
        kinds=[kind.value for kind in RunKind],
        statuses=[status.value for status in RunStatus],
        trigger_names={str(choice.id): choice.name for choice in trigger_choices.items},
    )


@router.get("/app/automation/runs/{run_id}")
async def run_page(request: Request, user: CurrentUser, run_id: uuid.UUID) -> Response:
    services: Services = request.app.state.services
    organization_id = user.organization_id
    async with tenant_transaction(services.sessions, organization_id) as session:
        run = await queries.run_of(session, organization_id, run_id)
    if run is None:
        raise NotFoundError(f"No run {run_id} in this organization.")
    return render(request, "automation/run.html", run=run)
