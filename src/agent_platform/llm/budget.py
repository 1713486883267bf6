"""Each organization's monthly LLM budget: how much of it is spent, and what that means.

Months are calendar months in UTC, as providers bill them. The check before a call and the
call's cost are not one transaction, so calls running at once may pass a limit by their own
cost: a budget stops spending, it is not a ledger.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.llm import metrics, repository
from agent_platform.llm.models import DEFAULT_WARNING_RATIO

log = structlog.get_logger("llm.budget")


@dataclass(frozen=True)
class BudgetState:
    month: date  # its first day
    spent_usd: Decimal
    limit_usd: Decimal | None  # None: no limit
    warning_ratio: Decimal

    @property
    def used_ratio(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        if self.limit_usd == 0:
            # A zero limit is how an admin switches the model off: spent from the start.
            return Decimal(1)
        return self.spent_usd / self.limit_usd

    @property
    def remaining_usd(self) -> Decimal | None:
        return None if self.limit_usd is None else max(self.limit_usd - self.spent_usd, Decimal(0))

    @property
    def exhausted(self) -> bool:
        return self.limit_usd is not None and self.spent_usd >= self.limit_usd

    @property
    def warning_reached(self) -> bool:
        ratio = self.used_ratio
        return ratio is not None and ratio >= self.warning_ratio


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


async def budget_state(
    session: AsyncSession, organization_id: uuid.UUID, now: datetime
) -> BudgetState:
    start = month_start(now)
    budget = await repository.budget_of(session, organization_id)
    return BudgetState(
        month=start.date(),
        spent_usd=await repository.spent_since(session, organization_id, start),
        limit_usd=budget.monthly_limit_usd if budget else None,
        warning_ratio=budget.warning_ratio if budget else DEFAULT_WARNING_RATIO,
    )


async def note_budget_state(
    session: AsyncSession, organization_id: uuid.UUID, state: BudgetState
) -> None:
    """Shows the share spent as a metric and, the first time in a month it reaches the
    warning level, logs a warning (once, whichever process sees it first)."""
    metrics.set_budget_used(organization_id, state.used_ratio)
    if state.warning_reached and await repository.claim_month_warning(
        session, organization_id, state.month
    ):
        log.warning(
            "llm_budget_warning",
            organization_id=str(organization_id),
            spent_usd=str(state.spent_usd),
            limit_usd=str(state.limit_usd),
            warning_ratio=str(state.warning_ratio),
        )
