"""What an agent needs from a CRM, whichever CRM it is (Kommo today: crm/kommo/port.py).

The agent's tools (agent/tool_calls.py) and its turn (agent/turn.py) speak only to this
Protocol, so they can be tested and reasoned about without Kommo's API shapes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class CrmActionError(Exception):
    """The CRM refused what was asked for a reason the model can act on (an unknown stage, a
    value that does not fit the field): the message is written for the model to read."""


@dataclass(frozen=True)
class LeadContext:
    """The lead as the model is shown it: as data, never as instructions (runtime.prompt)."""

    id: int
    name: str
    pipeline: str | None
    stage: str | None
    price: int | None
    tags: tuple[str, ...] = ()
    # The custom fields the agent is shown, by field name.
    fields: dict[str, Any] = field(default_factory=dict)

    def as_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "pipeline": self.pipeline,
            "stage": self.stage,
            "price": self.price,
            "tags": list(self.tags),
            "fields": dict(self.fields),
        }


class CrmPort(Protocol):
    """One lead's CRM, as an agent or an automation may read and change it. Every change but
    create_task is safe to repeat with the same arguments (a job retried after a crash may do
    so); a caller keeps create_task from repeating (agent/tool_calls.py)."""

    async def lead_context(self, lead_id: int, field_ids: Collection[int] = ()) -> LeadContext: ...

    async def create_task(self, lead_id: int, text: str, due_at: datetime) -> None: ...

    async def move_stage(self, lead_id: int, status_id: int) -> None: ...

    async def set_custom_field(self, lead_id: int, field: int | str, value: str) -> None:
        """`field` is the field's id or its code; `value` is converted to the field's type
        (an empty value clears the field)."""
        ...

    async def add_tag(self, lead_id: int, tag: str) -> None: ...

    async def remove_tag(self, lead_id: int, tag: str) -> None:
        """Nothing happens when the lead does not have the tag."""
        ...

    async def add_note(self, lead_id: int, text: str, *, key: str) -> None:
        """A common note on the lead, added once per `key`: a repeat with the same key adds
        nothing, even when the first attempt's fate is unknown."""
        ...

    async def assign(self, lead_id: int, user_id: int) -> None: ...
