"""Every query on LLM calls and budgets."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.llm.models import CallStatus, LlmBudget, LlmCall

ZERO = Decimal(0)


@dataclass(frozen=True)
class ModelUsage:
    model: str
    calls: int
    failed_calls: int  # errors and budget refusals
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    # Answered calls whose cost neither the provider nor the price table knew: `cost_usd`
    # leaves them out.
    calls_of_unknown_cost: int


async def add_call(session: AsyncSession, call: LlmCall) -> None:
    session.add(call)
    await session.flush()


async def budget_of(session: AsyncSession, organization_id: uuid.UUID) -> LlmBudget | None:
    return await session.get(LlmBudget, organization_id)


async def save_budget(
    session: AsyncSession,
    organization_id: uuid.UUID,
    *,
    monthly_limit_usd: Decimal | None,
    warning_ratio: Decimal,
) -> None:
    # A changed budget deserves its own warning, even in a month that had one.
    values = {
        "monthly_limit_usd": monthly_limit_usd,
        "warning_ratio": warning_ratio,
        "warned_month": None,
    }
    await session.execute(
        insert(LlmBudget)
        .values(organization_id=organization_id, **values)
        .on_conflict_do_update(index_elements=[LlmBudget.organization_id], set_=values)
    )


async def claim_month_warning(
    session: AsyncSession, organization_id: uuid.UUID, month: date
) -> bool:
    """True for the one caller that marks `month` as warned; False once it has been."""
    claimed = await session.scalar(
        update(LlmBudget)
        .where(
            LlmBudget.organization_id == organization_id,
            LlmBudget.warned_month.is_distinct_from(month),
        )
        .values(warned_month=month)
        .returning(LlmBudget.organization_id)
    )
    return claimed is not None


async def spent_since(
    session: AsyncSession, organization_id: uuid.UUID, since: datetime
) -> Decimal:
    spent = await session.scalar(
        select(func.coalesce(func.sum(LlmCall.cost_usd), ZERO)).where(
            LlmCall.organization_id == organization_id, LlmCall.created_at >= since
        )
    )
    return spent if spent is not None else ZERO


async def usage_by_model(
    session: AsyncSession, organization_id: uuid.UUID, since: datetime
) -> list[ModelUsage]:
    # A refused or failed call may have no model that answered: it counts under the one asked.
    model = func.coalesce(LlmCall.model_used, LlmCall.model_requested)
    answered = LlmCall.status == CallStatus.OK.value
    rows = await session.execute(
        select(
            model.label("model"),
            func.count().label("calls"),
            func.count().filter(~answered).label("failed_calls"),
            func.coalesce(func.sum(LlmCall.tokens_in), 0).label("tokens_in"),
            func.coalesce(func.sum(LlmCall.tokens_out), 0).label("tokens_out"),
            func.coalesce(func.sum(LlmCall.cost_usd), ZERO).label("cost_usd"),
            func.count().filter(answered, LlmCall.cost_usd.is_(None)).label("unknown_cost"),
        )
        .where(LlmCall.organization_id == organization_id, LlmCall.created_at >= since)
        .group_by(model)
        .order_by(model)
    )
    return [
        ModelUsage(
            model=row.model,
            calls=row.calls,
            failed_calls=row.failed_calls,
            tokens_in=row.tokens_in,
            tokens_out=row.tokens_out,
            cost_usd=row.cost_usd,
            calls_of_unknown_cost=row.unknown_cost,
        )
        for row in rows
    ]
