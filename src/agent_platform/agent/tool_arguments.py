"""Checking a model's tool-call arguments against the tool's JSON Schema.

The schemas (agent/runtime/tools.py) use a small part of JSON Schema: an object of integer
and string properties with bounds, required keys and no others. This checks exactly that
part, so the schema the model is shown is also the rule its calls are held to.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_BOUNDS: tuple[tuple[str, Callable[[Any, Any], bool], str], ...] = (
    ("minimum", lambda value, bound: value >= bound, "at least {}"),
    ("maximum", lambda value, bound: value <= bound, "at most {}"),
    ("minLength", lambda value, bound: len(value) >= bound, "at least {} characters"),
    ("maxLength", lambda value, bound: len(value) <= bound, "at most {} characters"),
)


def argument_problems(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with `arguments`, in words a model can correct; empty when nothing."""
    properties: Mapping[str, Mapping[str, Any]] = schema.get("properties", {})
    problems = [
        f"{name!r} is required" for name in schema.get("required", ()) if name not in arguments
    ]
    if schema.get("additionalProperties") is False:
        problems += [f"{name!r} is not an argument" for name in arguments if name not in properties]
    for name, value in arguments.items():
        if name in properties:
            problems += [
                f"{name!r} {problem}" for problem in _value_problems(properties[name], value)
            ]
    return problems


def _value_problems(rule: Mapping[str, Any], value: Any) -> list[str]:
    expected = rule.get("type")
    # bool is an int in Python, but true is no stage id.
    if expected == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return ["must be an integer"]
    if expected == "string" and not isinstance(value, str):
        return ["must be a string"]
    return [
        f"must be {wording.format(rule[key])}"
        for key, holds, wording in _BOUNDS
        if key in rule and not holds(value, rule[key])
    ]
