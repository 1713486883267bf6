"""The tools an agent may call, as OpenAI function-calling definitions.

The model only ever sees the tools its agent allows; what a call does (through the CRM port)
is the reply flow's business, not this module's.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal, get_args

ToolName = Literal[
    "create_task", "move_stage", "set_custom_field", "add_tag", "handoff", "schedule_follow_up"
]
TOOL_NAMES: tuple[ToolName, ...] = get_args(ToolName)
HANDOFF_TOOL: ToolName = "handoff"

_HOURS_AHEAD = {"type": "integer", "minimum": 1, "maximum": 720}


@dataclass(frozen=True)
class _Tool:
    description: str
    parameters: dict[str, dict[str, Any]]
    optional: frozenset[str] = frozenset()


_TOOLS: dict[ToolName, _Tool] = {
    "create_task": _Tool(
        "Create a task for the sales team about this lead, e.g. to call back.",
        {
            "text": {"type": "string", "minLength": 1, "maxLength": 1000},
            "due_in_hours": _HOURS_AHEAD | {"description": "When the task is due, from now."},
        },
        optional=frozenset({"due_in_hours"}),
    ),
    "move_stage": _Tool(
        "Move the lead to another stage of its pipeline.",
        {"status_id": {"type": "integer", "description": "The target stage's id."}},
    ),
    "set_custom_field": _Tool(
        "Record a fact the customer gave in one of the lead's custom fields.",
        {
            "field_id": {"type": "integer", "description": "The custom field's id."},
            "value": {"type": "string", "maxLength": 1000},
        },
    ),
    "add_tag": _Tool(
        "Add a tag to the lead.",
        {"tag": {"type": "string", "minLength": 1, "maxLength": 100}},
    ),
    "handoff": _Tool(
        "Hand the conversation to a human manager: the customer asks for a person, "
        "or you cannot help.",
        {"reason": {"type": "string", "description": "Why a person should take over."}},
    ),
    "schedule_follow_up": _Tool(
        "Write to the customer again later if they go quiet.",
        {
            "delay_hours": _HOURS_AHEAD | {"description": "How long to wait for the customer."},
            "topic": {"type": "string", "description": "What to follow up about."},
        },
    ),
}


def tool_definitions(allowed: Collection[str]) -> list[dict[str, Any]]:
    """The definitions of the allowed tools, in a fixed order.

    Fresh objects on every call: a caller may adjust one without changing the next agent's.
    """
    unknown = set(allowed) - set(TOOL_NAMES)
    if unknown:
        raise ValueError(f"unknown tools {sorted(unknown)}; known: {', '.join(TOOL_NAMES)}")
    return [_definition(name, _TOOLS[name]) for name in TOOL_NAMES if name in allowed]


def _definition(name: ToolName, tool: _Tool) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": tool.description,
            "parameters": {
                "type": "object",
                "properties": copy.deepcopy(tool.parameters),
                "required": [key for key in tool.parameters if key not in tool.optional],
                "additionalProperties": False,
            },
        },
    }
