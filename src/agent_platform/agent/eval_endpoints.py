"""POST /api/v1/agents/{id}/eval: scripted conversations against a version of an agent."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from agent_platform.agent.eval_dataset import EvalCase
from agent_platform.agent.evaluation import EvalReport, evaluate
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/agents", tags=["agents"])

# Cases run one after another within the request, each asking the model once per message:
# a larger dataset belongs to the CLI, which has no request timeout to meet.
MAX_CASES_PER_REQUEST = 50


class EvalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cases: list[EvalCase] = Field(min_length=1, max_length=MAX_CASES_PER_REQUEST)
    version: int | None = Field(
        default=None, ge=1, description="Any saved version (a draft too); none: the published one."
    )


@router.post(
    "/{agent_id}/eval",
    summary="Run scripted conversations against a version and check their expectations",
)
async def evaluate_agent(
    request: Request, principal: CurrentPrincipal, agent_id: uuid.UUID, body: EvalIn
) -> EvalReport:
    services: Services = request.app.state.services
    return await evaluate(
        services, principal.organization_id, agent_id, body.cases, version=body.version
    )
