"""Function calling: the tools offered to a model and the calls it answers with."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_platform.llm.errors import MalformedToolCallError


@dataclass(frozen=True)
class ToolDefinition:
    name: str
    description: str
    # A JSON Schema object describing the arguments.
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )

    def as_openai(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True)
class RawToolCall:
    """A tool call as the model wrote it: the arguments are text that ought to be JSON."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


def parse_tool_calls(raw_calls: Sequence[RawToolCall]) -> tuple[ToolCall, ...]:
    """Typed calls, or MalformedToolCallError: models do write broken JSON now and then."""
    return tuple(_parse(raw) for raw in raw_calls)


def _parse(raw: RawToolCall) -> ToolCall:
    try:
        # Some providers send a call without arguments as an empty string.
        arguments = json.loads(raw.arguments) if raw.arguments.strip() else {}
    except ValueError as exc:
        raise MalformedToolCallError(raw.name, raw.arguments, "its arguments are not JSON") from exc
    if not isinstance(arguments, dict):
        raise MalformedToolCallError(raw.name, raw.arguments, "its arguments are not an object")
    return ToolCall(id=raw.id, name=raw.name, arguments=arguments)
