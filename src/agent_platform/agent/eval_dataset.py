"""An evaluation dataset: scripted conversations and what each must show (docs/agents.md).

On disk it is JSON Lines, one case a line; the API takes the same cases as a JSON list.
Every shape forbids unknown keys, so a misspelt expectation is an error instead of a check
silently skipped.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

CustomerText = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
# The lead id the recording port answers for when a case gives none.
DEFAULT_LEAD_ID = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalLead(_Strict):
    """The lead the agent sees during the case, as the CRM would describe it."""

    id: int = Field(default=DEFAULT_LEAD_ID, ge=1)
    name: str = Field(default="Test lead", max_length=200)
    pipeline: str | None = Field(default=None, max_length=200)
    stage: str | None = Field(default=None, max_length=200)
    price: int | None = Field(default=None, ge=0)
    tags: list[str] = Field(default_factory=list, max_length=50)
    fields: dict[str, Any] = Field(default_factory=dict, max_length=50)
    pipeline_id: int | None = Field(
        default=None, ge=1, description="With status_id: checked against the active stages."
    )
    status_id: int | None = Field(default=None, ge=1)


class Expectations(_Strict):
    """What the case must show; a check left out is not made."""

    reply_contains: list[Phrase] = Field(default_factory=list, max_length=50)
    reply_not_contains: list[Phrase] = Field(default_factory=list, max_length=50)
    tool_called: list[ToolName] = Field(default_factory=list, max_length=20)
    tool_not_called: list[ToolName] = Field(default_factory=list, max_length=20)
    handoff: bool | None = None
    silent: bool | None = None


class EvalCase(_Strict):
    name: str = Field(min_length=1, max_length=200)
    messages: list[CustomerText] = Field(
        min_length=1, max_length=20, description="The customer's messages, in order."
    )
    at: AwareDatetime | None = Field(
        default=None,
        description="When the conversation happens (working hours); none: now.",
    )
    lead: EvalLead = Field(default_factory=EvalLead)
    expect: Expectations = Field(default_factory=Expectations)


class DatasetError(ValueError):
    """The dataset cannot be run; the message names the line and what is wrong there."""


def parse_dataset(text: str) -> list[EvalCase]:
    """Every case of a JSON Lines dataset; blank lines are skipped but still counted, so line
    numbers match an editor's."""
    cases = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            cases.append(_case_of_line(number, line))
    if not cases:
        raise DatasetError("the dataset has no cases")
    return cases


def _case_of_line(number: int, line: str) -> EvalCase:
    try:
        return EvalCase.model_validate(json.loads(line))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"line {number}: not JSON: {exc.msg}") from None
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "the case"
        raise DatasetError(f"line {number}: {where}: {error['msg']}") from None
