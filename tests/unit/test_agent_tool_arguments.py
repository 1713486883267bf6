"""A model's tool-call arguments held to the schema the model is shown."""

from __future__ import annotations

from typing import Any

import pytest

from agent_platform.agent.runtime.tools import tool_definitions
from agent_platform.agent.tool_arguments import argument_problems


def schema(tool: str) -> dict[str, Any]:
    [definition] = tool_definitions([tool])
    parameters: dict[str, Any] = definition["function"]["parameters"]
    return parameters


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("create_task", {"text": "Call back"}),
        ("create_task", {"text": "Call back", "due_in_hours": 720}),
        ("move_stage", {"status_id": 142}),
        ("set_custom_field", {"field_id": 1, "value": ""}),
        ("handoff", {"reason": "asked for a person"}),
    ],
)
def test_arguments_that_fit_the_schema_pass(tool: str, arguments: dict[str, Any]) -> None:
    assert argument_problems(schema(tool), arguments) == []


@pytest.mark.parametrize(
    ("tool", "arguments", "problem"),
    [
        ("create_task", {}, "'text' is required"),
        ("create_task", {"text": "x", "due_in_hours": 0}, "'due_in_hours' must be at least 1"),
        ("create_task", {"text": "x", "due_in_hours": 721}, "'due_in_hours' must be at most 720"),
        ("create_task", {"text": "x", "due_in_hours": 1.5}, "'due_in_hours' must be an integer"),
        ("move_stage", {"status_id": True}, "'status_id' must be an integer"),
        ("move_stage", {"status_id": "142"}, "'status_id' must be an integer"),
        ("add_tag", {"tag": ""}, "'tag' must be at least 1 characters"),
        ("add_tag", {"tag": 7}, "'tag' must be a string"),
        ("add_tag", {"tag": "x", "colour": "red"}, "'colour' is not an argument"),
    ],
)
def test_arguments_that_do_not_fit_say_why(
    tool: str, arguments: dict[str, Any], problem: str
) -> None:
    assert problem in argument_problems(schema(tool), arguments)
