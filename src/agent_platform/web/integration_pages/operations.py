"""/app/operations: the platform's health checks, the job queue's figures and this
organization's recent errors (failed jobs and failed webhook events), newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.db.session import tenant_transaction
from agent_platform.ops.endpoints import api_checks
from agent_platform.ops.health import run_checks
from agent_platform.organization.permissions import Permission, require
from agent_platform.queue.stats import queue_figures
from agent_platform.services import Services
from agent_platform.web.auth import CurrentUser
from agent_platform.web.integration_pages import queries
from agent_platform.web.integration_pages.display import when
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)

RECENT_ERRORS = 20


@dataclass(frozen=True)
class RecentError:
    kind: str  # "job" or "inbox"
    at: datetime | None
    subject: str  # the job's task, or the event's source and account
    reference: str  # the job's id or the event's id, to find it in the logs
    error: str | None  # a failed job's error is in the worker's log, not in the queue


@router.get("/app/operations")
async def operations_page(request: Request, user: CurrentUser) -> Response:
    require(user.role, Permission.VIEW_OPERATIONS)
    services: Services = request.app.state.services
    checks = await run_checks(api_checks(services))
    queue = services.settings.job_queue_name
    # queue_figures also reports any other queue holding jobs: only the platform's is shown.
    figures = {found.queue: found for found in await queue_figures(services.engine, [queue])}[queue]
    async with tenant_transaction(services.sessions, user.organization_id) as session:
        events = await queries.failed_inbox_events(session, user.organization_id, RECENT_ERRORS)
    jobs = await queries.failed_jobs(services.engine, user.organization_id, RECENT_ERRORS)
    return render(
        request,
        "integrations/operations.html",
        checks=checks,
        when=when,
        healthy=all(check.ok for check in checks),
        queue=figures,
        errors=recent_errors(events, jobs)[:RECENT_ERRORS],
    )


def recent_errors(
    events: list[queries.FailedInboxEvent], jobs: list[queries.FailedJob]
) -> list[RecentError]:
    merged = [
        RecentError(
            "inbox", event.at, f"{event.source} · {event.subdomain}", str(event.id), event.error
        )
        for event in events
    ] + [RecentError("job", job.at, job.task_name, str(job.id), None) for job in jobs]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(merged, key=lambda error: error.at or oldest, reverse=True)
