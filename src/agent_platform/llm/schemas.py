"""The LLM budget and usage API's bodies. Amounts are USD, as JSON numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from agent_platform.llm.budget import BudgetState
from agent_platform.llm.models import DEFAULT_WARNING_RATIO
from agent_platform.llm.repository import ModelUsage
from agent_platform.llm.service import MonthUsage

Usd = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_limit_usd: Decimal | None = Field(
        ge=0,
        max_digits=12,
        decimal_places=2,
        description=(
            "null: no limit. 0 stops every call (the agent answers from the knowledge base "
            "or hands over)."
        ),
    )
    warning_ratio: Decimal = Field(
        default=DEFAULT_WARNING_RATIO,
        gt=0,
        le=1,
        max_digits=3,
        decimal_places=2,
        description="The share spent at which a warning is logged, once a month.",
    )


class BudgetOut(BaseModel):
    month: str = Field(description="YYYY-MM, in UTC.")
    monthly_limit_usd: Usd | None
    warning_ratio: Usd
    spent_usd: Usd
    remaining_usd: Usd | None
    used_ratio: Usd | None
    warning_reached: bool
    exhausted: bool = Field(description="Calls are refused until the month ends.")

    @classmethod
    def of(cls, state: BudgetState) -> BudgetOut:
        ratio = state.used_ratio
        return cls(
            month=state.month.strftime("%Y-%m"),
            monthly_limit_usd=state.limit_usd,
            warning_ratio=state.warning_ratio,
            spent_usd=state.spent_usd,
            remaining_usd=state.remaining_usd,
            used_ratio=round(ratio, 4) if ratio is not None else None,
            warning_reached=state.warning_reached,
            exhausted=state.exhausted,
        )


class ModelUsageOut(BaseModel):
    model: str
    calls: int
    failed_calls: int = Field(description="Errors and calls refused by the budget.")
    tokens_in: int
    tokens_out: int
    cost_usd: Usd
    calls_of_unknown_cost: int = Field(
        description="Answered calls whose cost nobody knew; cost_usd leaves them out."
    )

    @classmethod
    def of(cls, usage: ModelUsage) -> ModelUsageOut:
        return cls(
            model=usage.model,
            calls=usage.calls,
            failed_calls=usage.failed_calls,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            cost_usd=usage.cost_usd,
            calls_of_unknown_cost=usage.calls_of_unknown_cost,
        )


class UsageOut(BaseModel):
    month: str = Field(description="YYYY-MM, in UTC.")
    calls: int
    failed_calls: int
    tokens_in: int
    tokens_out: int
    cost_usd: Usd
    calls_of_unknown_cost: int
    by_model: list[ModelUsageOut]
    budget: BudgetOut

    @classmethod
    def of(cls, usage: MonthUsage) -> UsageOut:
        models = usage.by_model
        return cls(
            month=usage.budget.month.strftime("%Y-%m"),
            calls=sum(model.calls for model in models),
            failed_calls=sum(model.failed_calls for model in models),
            tokens_in=sum(model.tokens_in for model in models),
            tokens_out=sum(model.tokens_out for model in models),
            cost_usd=sum((model.cost_usd for model in models), Decimal(0)),
            calls_of_unknown_cost=sum(model.calls_of_unknown_cost for model in models),
            by_model=[ModelUsageOut.of(model) for model in models],
            budget=BudgetOut.of(usage.budget),
        )
