"""The pipeline stages an agent works in: it answers leads there and leaves the rest alone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ActiveStage:
    pipeline_id: int
    status_id: int | None = None
    """None = every stage of the pipeline."""


@dataclass(frozen=True)
class LeadStage:
    pipeline_id: int
    status_id: int


def works_in(active_stages: Sequence[ActiveStage], lead: LeadStage) -> bool:
    """Whether the agent answers a lead at this stage; no active stages means every stage."""
    return not active_stages or any(
        stage.pipeline_id == lead.pipeline_id and stage.status_id in (None, lead.status_id)
        for stage in active_stages
    )
