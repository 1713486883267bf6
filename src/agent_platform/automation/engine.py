"""The rule engine: condition trees, checked once when saved and evaluated on every event.

A tree is JSON, as the visual editor builds it:

    {"all": [...]} | {"any": [...]} | {"not": {...}}
    | {"field": "lead.price", "operator": "gt", "value": 1000}
    | {"rule": "<id of a saved rule>"}

`parse_condition` refuses anything the engine could not evaluate as meant (an unknown field, an
operator that does not fit the field's type, a value of the wrong kind, a regular expression
that may take exponential time, a tree too deep or too large) with a message an admin can act
on and the path of the offending part. `evaluate` never fails: it returns whether the tree
matched and a trace that explains every condition with the values it saw.

Text comparisons ignore case ("VIP" equals "vip"), as a person reading the CRM would.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import json
import math
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias, cast

import regex  # type: ignore[import-untyped]

from agent_platform.automation.fields import (
    ALL_OPERATORS,
    CUSTOM_FIELD_PREFIX,
    FIELDS,
    OPERATORS,
    FieldSpec,
    FieldType,
    field_spec,
)

MAX_DEPTH = 8
MAX_NODES = 200
MAX_LIST_VALUES = 500
MAX_TEXT_VALUE = 1000
MAX_PATTERN = 200
# A pattern runs on at most this much of a text, and for at most this long.
MATCH_SUBJECT_LIMIT = 10_000
MATCH_TIMEOUT_SECONDS = 0.05
# A trace keeps this much of a long text it saw: enough to explain, small enough to store.
TRACE_TEXT_LIMIT = 500

# Python's own regular-expression parser has no public name; it gives a pattern's tree,
# which is how nested repeats are found. importlib keeps the private module out of typing.
_re_parser: Any = importlib.import_module("re._parser")
_REPEAT_OPCODES = frozenset({"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"})


class RuleError(ValueError):
    """A condition tree (or an action list) that cannot be accepted, and where."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message, path)
        self.message = message
        self.path = path

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(frozen=True)
class All:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    condition: Condition


@dataclass(frozen=True)
class Compare:
    field: str
    operator: str
    # Lists are kept as tuples so that a condition stays hashable.
    value: Any = None


@dataclass(frozen=True)
class RuleRef:
    rule_id: str


Condition: TypeAlias = All | AnyOf | Not | Compare | RuleRef


@dataclass(frozen=True)
class Facts:
    """What a condition can see: field name → value now, and the lead's values before the
    event (for changed_to / changed_from)."""

    current: Mapping[str, Any]
    previous: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Evaluation:
    matched: bool
    trace: dict[str, Any]


_NO_RULES: Mapping[str, Condition | None] = MappingProxyType({})


# ---------------------------------------------------------------------------------------------
# Parsing


def parse_condition(
    tree: object, *, allow_rule_refs: bool = True, path: str = "conditions"
) -> Condition:
    """The condition `tree` describes; RuleError when it is not a valid tree. A saved rule
    is parsed with allow_rule_refs=False: rules do not refer to rules."""
    return _Parser(allow_rule_refs).node(tree, path, depth=0)


def rule_ids(condition: Condition) -> frozenset[str]:
    """The ids of the saved rules `condition` refers to."""
    match condition:
        case All(children) | AnyOf(children):
            return frozenset().union(*(rule_ids(child) for child in children))
        case Not(child):
            return rule_ids(child)
        case RuleRef(rule_id):
            return frozenset({rule_id})
        case _:
            return frozenset()


_NODE_KINDS = ("all", "any", "not", "field", "rule")
_SHAPES = (
    '{"all": [...]}, {"any": [...]}, {"not": {...}}, '
    '{"field": ..., "operator": ..., "value": ...} or {"rule": "<rule id>"}'
)


class _Parser:
    def __init__(self, allow_rule_refs: bool) -> None:
        self.allow_rule_refs = allow_rule_refs
        self.nodes = 0

    def node(self, tree: object, path: str, depth: int) -> Condition:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise RuleError(f"conditions have more than {MAX_NODES} parts; simplify them", path)
        if not isinstance(tree, Mapping):
            raise RuleError(f"a condition must be an object: {_SHAPES}, not {_show(tree)}", path)
        kinds = [kind for kind in _NODE_KINDS if kind in tree]
        if not kinds:
            raise RuleError(f"a condition needs one of: {', '.join(_NODE_KINDS)}", path)
        if len(kinds) > 1:
            raise RuleError(
                f"a condition has only one of {', '.join(_NODE_KINDS)}; "
                f"this one has {' and '.join(kinds)}",
                path,
            )
        kind = kinds[0]
        allowed = {"field", "operator", "value"} if kind == "field" else {kind}
        for key in tree:
            if key not in allowed:
                raise RuleError(
                    f"unknown key {_show(key)}; this condition has {', '.join(sorted(allowed))}",
                    f"{path}.{key}",
                )
        if kind in ("all", "any", "not"):
            if depth + 1 > MAX_DEPTH:
                raise RuleError(f"conditions are nested deeper than {MAX_DEPTH} levels", path)
            return self.group(kind, tree[kind], f"{path}.{kind}", depth + 1)
        if kind == "rule":
            return self.rule_ref(tree["rule"], f"{path}.rule")
        return self.compare(tree, path)

    def group(self, kind: str, children: object, path: str, depth: int) -> Condition:
        if kind == "not":
            if isinstance(children, list):
                raise RuleError("not takes one condition (an object), not a list", path)
            return Not(self.node(children, path, depth))
        if not isinstance(children, list):
            raise RuleError(f"{kind} must be a list of conditions, not {_show(children)}", path)
        parsed = tuple(
            self.node(child, f"{path}[{index}]", depth) for index, child in enumerate(children)
        )
        return All(parsed) if kind == "all" else AnyOf(parsed)

    def rule_ref(self, value: object, path: str) -> RuleRef:
        if not self.allow_rule_refs:
            raise RuleError(
                "a rule cannot refer to another rule; refer to rules from triggers "
                "and sequence steps",
                path,
            )
        try:
            return RuleRef(str(uuid.UUID(value)) if isinstance(value, str) else "")
        except ValueError:
            pass
        raise RuleError(f"rule must be the id of a saved rule, not {_show(value)}", path)

    def compare(self, tree: Mapping[str, Any], path: str) -> Compare:
        name = tree["field"]
        if not isinstance(name, str):
            raise RuleError(
                f"field must be a field name such as 'lead.name', not {_show(name)}",
                f"{path}.field",
            )
        spec = field_spec(name)
        if spec is None:
            raise RuleError(_unknown_field(name), f"{path}.field")
        operator = tree.get("operator")
        allowed = [op for op in ALL_OPERATORS if op in OPERATORS[spec.type]]
        if not isinstance(operator, str) or operator not in ALL_OPERATORS:
            problem = "operator is required" if operator is None else "unknown operator"
            shown = "" if operator is None else f" {_show(operator)}"
            raise RuleError(
                f"{problem}{shown}; for {name} use one of: {', '.join(allowed)}",
                f"{path}.operator",
            )
        if operator not in OPERATORS[spec.type]:
            raise RuleError(
                f"operator '{operator}' does not apply to {name} ({spec.type}); "
                f"use one of: {', '.join(allowed)}",
                f"{path}.operator",
            )
        value = _check_value(spec, operator, tree.get("value"), f"{path}.value")
        return Compare(field=name, operator=operator, value=value)


def _unknown_field(name: str) -> str:
    if name.startswith(CUSTOM_FIELD_PREFIX):
        return f"name the custom field by id or code: {CUSTOM_FIELD_PREFIX}<id or code>"
    message = f"unknown field {_show(name)}"
    close = difflib.get_close_matches(name, FIELDS, n=1)
    return f"{message}; did you mean {_show(close[0])}?" if close else message


@dataclass(frozen=True)
class _Kind:
    """What a value must be, as an admin reads it."""

    description: str
    accepts: Callable[[object], bool]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_STRING = _Kind("a string", lambda value: isinstance(value, str))
_NUMBER = _Kind("a number", _is_number)
_BOOLEAN = _Kind("true or false", lambda value: isinstance(value, bool))
_TEXT_OR_NUMBER = _Kind(
    "a string or a number", lambda value: isinstance(value, str) or _is_number(value)
)
_SCALAR = _Kind(
    "a string, a number, true or false",
    lambda value: isinstance(value, str | bool) or _is_number(value),
)
_EQUALITY_KIND = {
    FieldType.STRING: _STRING,
    FieldType.NUMBER: _NUMBER,
    FieldType.BOOLEAN: _BOOLEAN,
    FieldType.ANY: _SCALAR,
}
_NO_VALUE = frozenset({"is_empty", "is_not_empty"})
_ORDERING = frozenset({"gt", "gte", "lt", "lte"})
_EQUALITY = frozenset({"equals", "not_equals", "changed_to", "changed_from"})


def _check_value(spec: FieldSpec, operator: str, value: object, path: str) -> Any:
    """The value, checked for `operator` on `spec`'s type (lists become tuples)."""
    name = spec.name
    if operator in _NO_VALUE:
        if value is not None:
            raise RuleError(f"operator '{operator}' takes no value", path)
        return None
    if operator == "between":
        return _check_between(name, value, path)
    if operator == "matches":
        return _check_pattern(name, value, path)
    if operator in ("in", "not_in"):
        return _check_list(name, _EQUALITY_KIND[spec.type], value, path)
    if operator in _ORDERING:
        kind = _NUMBER
    elif operator in _EQUALITY:
        kind = _EQUALITY_KIND[spec.type]
    elif operator == "starts_with" or spec.type is FieldType.STRING:
        kind = _STRING
    else:  # contains / not_contains on a list or an any-typed field
        kind = _TEXT_OR_NUMBER
    return _check_scalar(name, kind, value, path)


def _check_scalar(name: str, kind: _Kind, value: object, path: str, each: bool = False) -> Any:
    subject = f"each value for {name}" if each else f"value for {name}"
    if value is None:
        raise RuleError(f"{subject} is required: {kind.description}", path)
    if not kind.accepts(value):
        raise RuleError(f"{subject} must be {kind.description}, not {_show(value)}", path)
    if isinstance(value, str) and len(value) > MAX_TEXT_VALUE:
        raise RuleError(
            f"{subject} is {len(value)} characters long; at most {MAX_TEXT_VALUE}", path
        )
    return value


def _check_list(name: str, kind: _Kind, value: object, path: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise RuleError(
            f"value for {name} must be a list of values, each {kind.description}, "
            f"not {_show(value)}",
            path,
        )
    if not value:
        raise RuleError(f"value for {name} must list at least one value", path)
    if len(value) > MAX_LIST_VALUES:
        raise RuleError(
            f"value for {name} lists {len(value)} values; at most {MAX_LIST_VALUES}", path
        )
    return tuple(
        _check_scalar(name, kind, item, f"{path}[{index}]", each=True)
        for index, item in enumerate(value)
    )


def _check_between(name: str, value: object, path: str) -> tuple[float, float]:
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(map(_is_number, value))):
        raise RuleError(
            f"value for {name} must be two numbers [low, high], not {_show(value)}", path
        )
    low, high = value
    if low > high:
        raise RuleError(
            f"value for {name} must be [low, high] with low ≤ high, not {_show(value)}", path
        )
    return (low, high)


def _check_pattern(name: str, value: object, path: str) -> str:
    if not isinstance(value, str):
        raise RuleError(
            f"value for {name} must be a regular expression (a string), not {_show(value)}",
            path,
        )
    if len(value) > MAX_PATTERN:
        raise RuleError(
            f"the pattern for {name} is {len(value)} characters long; at most {MAX_PATTERN}",
            path,
        )
    try:
        parsed = _re_parser.parse(value)
        _compiled(value)
    except (re.error, regex.error) as error:
        raise RuleError(
            f"the pattern for {name} is not a valid regular expression: {error}", path
        ) from error
    if _repeats_unbounded_repeat(parsed):
        raise RuleError(
            f"the pattern for {name} may take exponential time: a repeated group contains "
            "'+', '*' or '{n,}' (like '(a+)+'); repeat either the group or what is inside it",
            path,
        )
    return value


def _repeats_unbounded_repeat(subpattern: Any) -> bool:
    """Whether a part repeated more than once holds an unbounded repeat: `(a+)+`, `(a*)*`,
    `(.*a){20}`. Such patterns backtrack through every way of splitting the text."""
    for opcode, argument in subpattern.data:
        if opcode.name in _REPEAT_OPCODES:
            _, most, body = argument
            if most > 1 and _has_unbounded_repeat(body):
                return True
        if any(_repeats_unbounded_repeat(child) for child in _subpatterns(argument)):
            return True
    return False


def _has_unbounded_repeat(subpattern: Any) -> bool:
    for opcode, argument in subpattern.data:
        if opcode.name in _REPEAT_OPCODES and argument[1] == _re_parser.MAXREPEAT:
            return True
        if any(_has_unbounded_repeat(child) for child in _subpatterns(argument)):
            return True
    return False


def _subpatterns(argument: Any) -> Iterator[Any]:
    """The sub-patterns inside an opcode's argument (groups, branches, lookarounds)."""
    if isinstance(argument, _re_parser.SubPattern):
        yield argument
    elif isinstance(argument, tuple | list):
        for item in argument:
            yield from _subpatterns(item)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    return regex.compile(pattern, regex.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Evaluation


def evaluate(
    condition: Condition | None,
    facts: Facts,
    rules: Mapping[str, Condition | None] = _NO_RULES,
) -> Evaluation:
    """Whether `condition` holds on `facts`, and why. `rules` maps the ids of referenced rules
    to their conditions (None: the rule is disabled). No condition always matches."""
    if condition is None:
        return Evaluation(matched=True, trace={"matched": True, "always": True})
    trace = _trace(condition, facts, rules, frozenset())
    return Evaluation(matched=trace["matched"], trace=trace)


def _trace(
    condition: Condition,
    facts: Facts,
    rules: Mapping[str, Condition | None],
    within_rules: frozenset[str],
) -> dict[str, Any]:
    # Every child is evaluated, even after the outcome is known, so that the trace explains
    # every condition the admin wrote.
    match condition:
        case All(children):
            traces = [_trace(child, facts, rules, within_rules) for child in children]
            return {"all": traces, "matched": all(trace["matched"] for trace in traces)}
        case AnyOf(children):
            traces = [_trace(child, facts, rules, within_rules) for child in children]
            return {"any": traces, "matched": any(trace["matched"] for trace in traces)}
        case Not(child):
            inner = _trace(child, facts, rules, within_rules)
            return {"not": inner, "matched": not inner["matched"]}
        case RuleRef(rule_id):
            return _trace_rule(rule_id, facts, rules, within_rules)
        case Compare():
            return _trace_compare(condition, facts)


def _trace_rule(
    rule_id: str,
    facts: Facts,
    rules: Mapping[str, Condition | None],
    within_rules: frozenset[str],
) -> dict[str, Any]:
    if rule_id in within_rules:
        return {"rule": rule_id, "matched": False, "reason": "the rule refers to itself"}
    if rule_id not in rules:
        return {"rule": rule_id, "matched": False, "reason": "the rule does not exist"}
    referenced = rules[rule_id]
    if referenced is None:
        return {"rule": rule_id, "matched": False, "reason": "the rule is disabled"}
    inner = _trace(referenced, facts, rules, within_rules | {rule_id})
    return {"rule": rule_id, "matched": inner["matched"], "trace": inner}


def _trace_compare(condition: Compare, facts: Facts) -> dict[str, Any]:
    seen = facts.current.get(condition.field)
    trace: dict[str, Any] = {
        "field": condition.field,
        "operator": condition.operator,
        "value": list(condition.value) if isinstance(condition.value, tuple) else condition.value,
        "seen": _for_trace(seen),
    }
    try:
        if condition.operator in ("changed_to", "changed_from"):
            previous = facts.previous.get(condition.field)
            trace["previous"] = _for_trace(previous)
            is_now, was = _equals(seen, condition.value), _equals(previous, condition.value)
            if condition.operator == "changed_to":
                matched = is_now and not was
            else:
                matched = was and not is_now
        else:
            matched = _OPERATIONS[condition.operator](seen, condition.value)
    except TimeoutError:
        matched = False
        trace["error"] = "regex timed out"
    trace["matched"] = matched
    return trace


def _number(value: object) -> float | None:
    """A number, also from text ("1500" in a custom field); None when it is not one."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _equals(seen: object, value: object) -> bool:
    if isinstance(value, bool) or isinstance(seen, bool):
        return isinstance(seen, bool) and isinstance(value, bool) and seen == value
    if isinstance(value, str) and isinstance(seen, str):
        return seen.casefold() == value.casefold()
    seen_number, value_number = _number(seen), _number(value)
    return seen_number is not None and seen_number == value_number


def _contains(seen: object, value: object) -> bool:
    if isinstance(seen, str):
        return str(value).casefold() in seen.casefold()
    if isinstance(seen, list | tuple):
        return any(_equals(item, value) for item in seen)
    return False


def _starts_with(seen: object, value: object) -> bool:
    return isinstance(seen, str) and seen.casefold().startswith(str(value).casefold())


def _matches(seen: object, pattern: object) -> bool:
    if _is_number(seen):
        seen = str(seen)
    if not isinstance(seen, str):
        return False
    subject = seen[:MATCH_SUBJECT_LIMIT]
    return _compiled(pattern).search(subject, timeout=MATCH_TIMEOUT_SECONDS) is not None


def _one_of(seen: object, values: object) -> bool:
    return any(_equals(seen, value) for value in cast(tuple[object, ...], values))


def _ordered(compare: Callable[[float, float], bool]) -> Callable[[object, object], bool]:
    def operation(seen: object, value: object) -> bool:
        number = _number(seen)
        return number is not None and compare(number, cast(float, value))

    return operation


def _between(seen: object, value: object) -> bool:
    number = _number(seen)
    low, high = cast(tuple[float, float], value)
    return number is not None and low <= number <= high


def _is_empty(seen: object, _: object) -> bool:
    if seen is None:
        return True
    if isinstance(seen, str):
        return not seen.strip()
    if isinstance(seen, list | tuple | dict):
        return not seen
    return False


_OPERATIONS: dict[str, Callable[[object, object], bool]] = {
    "equals": _equals,
    "not_equals": lambda seen, value: not _equals(seen, value),
    "contains": _contains,
    "not_contains": lambda seen, value: not _contains(seen, value),
    "starts_with": _starts_with,
    "matches": _matches,
    "in": _one_of,
    "not_in": lambda seen, value: not _one_of(seen, value),
    "gt": _ordered(lambda number, value: number > value),
    "gte": _ordered(lambda number, value: number >= value),
    "lt": _ordered(lambda number, value: number < value),
    "lte": _ordered(lambda number, value: number <= value),
    "between": _between,
    "is_empty": _is_empty,
    "is_not_empty": lambda seen, value: not _is_empty(seen, value),
}


def _for_trace(value: object) -> object:
    if isinstance(value, str) and len(value) > TRACE_TEXT_LIMIT:
        return value[:TRACE_TEXT_LIMIT] + "…"
    return value


def _show(value: object) -> str:
    """A value as an error message quotes it: 'abc', 5, true, [1, 2]."""
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "…")
    try:
        shown = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        shown = repr(value)
    return shown if len(shown) <= 60 else shown[:60] + "…"
