"""A CRM port for evaluation: it reads the case's lead and records what the agent would have
changed, changing nothing anywhere, so an agent's tools can be checked without a CRM."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent_platform.agent.eval_dataset import EvalLead
from agent_platform.crm.ports import CrmActionError, LeadContext


@dataclass(frozen=True)
class CrmAction:
    """One change the agent asked of the CRM."""

    name: str
    arguments: dict[str, Any]


@dataclass
class RecordingCrmPort:
    """Implements crm.ports.CrmPort for the one lead of an evaluation case."""

    lead: EvalLead
    actions: list[CrmAction] = field(default_factory=list)

    async def lead_context(self, lead_id: int, field_ids: Collection[int] = ()) -> LeadContext:
        self._check_lead(lead_id)
        return LeadContext(
            id=self.lead.id,
            name=self.lead.name,
            pipeline=self.lead.pipeline,
            stage=self.lead.stage,
            price=self.lead.price,
            tags=tuple(self.lead.tags),
            fields=dict(self.lead.fields),
        )

    async def create_task(self, lead_id: int, text: str, due_at: datetime) -> None:
        self._record(lead_id, "create_task", text=text, due_at=due_at.isoformat())

    async def move_stage(self, lead_id: int, status_id: int) -> None:
        self._record(lead_id, "move_stage", status_id=status_id)

    async def set_custom_field(self, lead_id: int, field: int | str, value: str) -> None:
        self._record(lead_id, "set_custom_field", field=field, value=value)

    async def add_tag(self, lead_id: int, tag: str) -> None:
        self._record(lead_id, "add_tag", tag=tag)

    async def remove_tag(self, lead_id: int, tag: str) -> None:
        self._record(lead_id, "remove_tag", tag=tag)

    async def add_note(self, lead_id: int, text: str, *, key: str) -> None:
        self._record(lead_id, "add_note", text=text)

    async def assign(self, lead_id: int, user_id: int) -> None:
        self._record(lead_id, "assign", user_id=user_id)

    def _record(self, lead_id: int, name: str, **arguments: Any) -> None:
        self._check_lead(lead_id)
        self.actions.append(CrmAction(name, arguments))

    def _check_lead(self, lead_id: int) -> None:
        # The turn only ever names the lead it was given: another id is a bug worth seeing.
        if lead_id != self.lead.id:
            raise CrmActionError(f"Lead {lead_id} is not this conversation's lead.")
