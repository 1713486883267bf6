"""What the rules API reads and answers. Condition trees are taken as any JSON here and
checked by the engine in the service, whose errors name the path of the bad part."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agent_platform.automation.dry_run import SampleEvent
from agent_platform.automation.resources import EditableOut

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
CONDITIONS_DESCRIPTION = (
    'A tree: {"all": [...]}, {"any": [...]}, {"not": {...}} or '
    '{"field": "lead.price", "operator": "gt", "value": 1000}.'
)


class RuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    conditions: Any = Field(description=CONDITIONS_DESCRIPTION)
    enabled: bool = True


class RulePatch(BaseModel):
    """Only the fields sent change."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    conditions: Any = Field(default=None, description=CONDITIONS_DESCRIPTION)
    enabled: bool | None = None


class RuleOut(EditableOut):
    description: str
    conditions: dict[str, Any]


class RuleDryRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: SampleEvent = Field(default_factory=SampleEvent)


class ConditionsDryRunIn(BaseModel):
    """An unsaved tree (the editor's "test"), which may refer to saved rules."""

    model_config = ConfigDict(extra="forbid")

    conditions: Any = Field(description=CONDITIONS_DESCRIPTION)
    event: SampleEvent = Field(default_factory=SampleEvent)


class DryRunOut(BaseModel):
    matched: bool
    trace: dict[str, Any] = Field(description="Each condition with the value seen and its result.")
    facts: dict[str, Any] = Field(description="The values the event gave each field.")


class RuleDryRunOut(DryRunOut):
    run_id: uuid.UUID | None = Field(description="The run recorded at /api/v1/automation/runs.")


class FieldOut(BaseModel):
    name: str
    type: str
    group: str
    description: str
    operators: list[str]


class FieldCatalogOut(BaseModel):
    fields: list[FieldOut]
    custom_field_prefix: str = Field(
        description="`<prefix><id or code>` names a custom field of the lead (of any type)."
    )
    any_type_operators: list[str]
