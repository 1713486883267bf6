"""An organization's LLM budget and this month's usage, for the REST API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from agent_platform.db.session import tenant_transaction
from agent_platform.llm import repository
from agent_platform.llm.budget import BudgetState, budget_state, month_start, note_budget_state
from agent_platform.llm.repository import ModelUsage
from agent_platform.services import Services


@dataclass(frozen=True)
class MonthUsage:
    budget: BudgetState
    by_model: list[ModelUsage]


async def current_budget(services: Services, organization_id: uuid.UUID) -> BudgetState:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return await budget_state(session, organization_id, datetime.now(UTC))


async def set_budget(
    services: Services,
    organization_id: uuid.UUID,
    *,
    monthly_limit_usd: Decimal | None,
    warning_ratio: Decimal,
) -> BudgetState:
    async with tenant_transaction(services.sessions, organization_id) as session:
        await repository.save_budget(
            session,
            organization_id,
            monthly_limit_usd=monthly_limit_usd,
            warning_ratio=warning_ratio,
        )
        state = await budget_state(session, organization_id, datetime.now(UTC))
        # A limit lowered below this month's spend warns (and shows in the metric) at once.
        await note_budget_state(session, organization_id, state)
        return state


async def month_usage(services: Services, organization_id: uuid.UUID) -> MonthUsage:
    now = datetime.now(UTC)
    async with tenant_transaction(services.sessions, organization_id) as session:
        return MonthUsage(
            budget=await budget_state(session, organization_id, now),
            by_model=await repository.usage_by_model(session, organization_id, month_start(now)),
        )
