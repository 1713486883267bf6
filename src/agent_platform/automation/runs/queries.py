"""The API's reads of the run log, scoped by the organization (writes: runs.repository)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.models import AutomationRun, RunKind, RunStatus
from agent_platform.automation.resources import newest_rows, row_of
from agent_platform.kit.pagination import PageRequest


@dataclass(frozen=True)
class RunQuery:
    """Which runs a list shows; None means any. `since`/`until` bound when they started."""

    kind: RunKind | None = None
    status: RunStatus | None = None
    trigger_id: uuid.UUID | None = None
    sequence_id: uuid.UUID | None = None
    enrollment_id: uuid.UUID | None = None
    rule_id: uuid.UUID | None = None
    lead_id: int | None = None
    matched: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


async def list_runs(
    session: AsyncSession, organization_id: uuid.UUID, query: RunQuery, page: PageRequest
) -> list[AutomationRun]:
    equal_to = {
        AutomationRun.kind: None if query.kind is None else query.kind.value,
        AutomationRun.status: None if query.status is None else query.status.value,
        AutomationRun.trigger_id: query.trigger_id,
        AutomationRun.sequence_id: query.sequence_id,
        AutomationRun.enrollment_id: query.enrollment_id,
        AutomationRun.rule_id: query.rule_id,
        AutomationRun.lead_id: query.lead_id,
        AutomationRun.matched: query.matched,
    }
    started = []
    if query.since is not None:
        started.append(AutomationRun.created_at >= query.since)
    if query.until is not None:
        started.append(AutomationRun.created_at < query.until)
    return await newest_rows(session, AutomationRun, organization_id, page, equal_to, *started)


async def run_of(
    session: AsyncSession, organization_id: uuid.UUID, run_id: uuid.UUID
) -> AutomationRun | None:
    return await row_of(session, AutomationRun, organization_id, run_id)
