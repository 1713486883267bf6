"""The LLM budget and this month's usage, per organization (API key)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from agent_platform.llm import service
from agent_platform.llm.schemas import BudgetIn, BudgetOut, UsageOut
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/llm", tags=["llm"])


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get("/budget", summary="This organization's monthly LLM budget and what is spent")
async def get_budget(request: Request, principal: CurrentPrincipal) -> BudgetOut:
    state = await service.current_budget(_services(request), principal.organization_id)
    return BudgetOut.of(state)


@router.put("/budget", summary="Set the monthly LLM budget")
async def put_budget(request: Request, principal: CurrentPrincipal, body: BudgetIn) -> BudgetOut:
    state = await service.set_budget(
        _services(request),
        principal.organization_id,
        monthly_limit_usd=body.monthly_limit_usd,
        warning_ratio=body.warning_ratio,
    )
    return BudgetOut.of(state)


@router.get("/usage", summary="This month's LLM calls, tokens and cost by model")
async def get_usage(request: Request, principal: CurrentPrincipal) -> UsageOut:
    usage = await service.month_usage(_services(request), principal.organization_id)
    return UsageOut.of(usage)
