"""Laws of the rule engine over generated trees and facts: `not` inverts, `all`/`any` behave as
Python's all/any (De Morgan included), operators agree with Python on generated values, every
invalid tree is refused with a message and a path, and regular-expression bombs are refused."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from agent_platform.automation.engine import (
    All,
    AnyOf,
    Condition,
    Facts,
    Not,
    RuleError,
    evaluate,
    parse_condition,
)

NUMBERS = st.integers(-(10**9), 10**9) | st.floats(
    min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False
)
TEXTS = st.text(max_size=30)
SHORT_WORDS = st.text(alphabet="abcAB ", max_size=6)


def compare(field: str, operator: str, value: object = None) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


LEAVES = st.one_of(
    st.builds(lambda op, v: compare("lead.price", op, v), st.sampled_from(["gt", "lte"]), NUMBERS),
    st.builds(
        lambda lo, hi: compare("lead.price", "between", [lo, lo + hi]), NUMBERS, NUMBERS.map(abs)
    ),
    st.builds(lambda v: compare("lead.name", "contains", v), SHORT_WORDS),
    st.builds(lambda v: compare("lead.tags", "contains", v), SHORT_WORDS),
    st.builds(lambda v: compare("lead.status_id", "changed_to", v), st.integers(1, 3)),
    st.builds(lambda v: compare("time.within_working_hours", "equals", v), st.booleans()),
    st.just(compare("lead.name", "is_empty")),
)


def groups(levels: int) -> st.SearchStrategy[dict[str, Any]]:
    if levels == 0:
        return LEAVES
    below = groups(levels - 1)
    return st.one_of(
        LEAVES,
        st.lists(below, max_size=3).map(lambda children: {"all": children}),
        st.lists(below, max_size=3).map(lambda children: {"any": children}),
        below.map(lambda child: {"not": child}),
    )


TREES = groups(4)
CONDITIONS = TREES.map(parse_condition)
FACTS = st.builds(
    lambda price, name, tags, status, before, open_now: Facts(
        {
            key: value
            for key, value in {
                "lead.price": price,
                "lead.name": name,
                "lead.tags": tags,
                "lead.status_id": status,
                "time.within_working_hours": open_now,
            }.items()
            if value is not None
        },
        {} if before is None else {"lead.status_id": before},
    ),
    st.none() | NUMBERS,
    st.none() | SHORT_WORDS,
    st.none() | st.lists(SHORT_WORDS, max_size=3),
    st.none() | st.integers(1, 3),
    st.none() | st.integers(1, 3),
    st.booleans(),
)


def refusal(tree: object) -> RuleError | None:
    try:
        parse_condition(tree)
    except RuleError as error:
        return error
    return None


def matched(condition: Condition, facts: Facts) -> bool:
    return evaluate(condition, facts).matched


# --- laws ----------------------------------------------------------------------------------------


@given(CONDITIONS, FACTS)
def test_not_inverts(condition: Condition, facts: Facts) -> None:
    assert matched(Not(condition), facts) is not matched(condition, facts)
    assert matched(Not(Not(condition)), facts) is matched(condition, facts)


@given(FACTS)
def test_all_of_nothing_holds_and_any_of_nothing_does_not(facts: Facts) -> None:
    assert matched(All(()), facts)
    assert not matched(AnyOf(()), facts)


@given(CONDITIONS, FACTS)
def test_a_group_of_one_is_that_one(condition: Condition, facts: Facts) -> None:
    assert matched(All((condition,)), facts) is matched(condition, facts)
    assert matched(AnyOf((condition,)), facts) is matched(condition, facts)


@given(st.lists(CONDITIONS, max_size=4), FACTS)
def test_all_and_any_agree_with_python_and_de_morgan(
    conditions: list[Condition], facts: Facts
) -> None:
    each = [matched(condition, facts) for condition in conditions]
    negated = tuple(Not(condition) for condition in conditions)
    assert matched(All(tuple(conditions)), facts) is all(each)
    assert matched(AnyOf(tuple(conditions)), facts) is any(each)
    assert matched(Not(All(tuple(conditions))), facts) is matched(AnyOf(negated), facts)
    assert matched(Not(AnyOf(tuple(conditions))), facts) is matched(All(negated), facts)


@given(CONDITIONS, FACTS)
def test_the_trace_explains_every_condition(condition: Condition, facts: Facts) -> None:
    def count(trace: dict[str, Any]) -> int:
        if "all" in trace or "any" in trace:
            return 1 + sum(count(child) for child in trace.get("all", trace.get("any", [])))
        if "not" in trace:
            return 1 + count(trace["not"])
        return 1

    def size(condition: Condition) -> int:
        match condition:
            case All(children) | AnyOf(children):
                return 1 + sum(size(child) for child in children)
            case Not(child):
                return 1 + size(child)
            case _:
                return 1

    assert count(evaluate(condition, facts).trace) == size(condition)


# --- operators agree with Python --------------------------------------------------------------


def holds(field: str, operator: str, value: object, seen: object) -> bool:
    facts = Facts({} if seen is None else {field: seen})
    return matched(parse_condition(compare(field, operator, value)), facts)


@given(NUMBERS, NUMBERS, NUMBERS)
def test_number_operators_agree_with_python(seen: float, value: float, other: float) -> None:
    assert holds("lead.price", "equals", value, seen) is (seen == value)
    assert holds("lead.price", "not_equals", value, seen) is (seen != value)
    assert holds("lead.price", "gt", value, seen) is (seen > value)
    assert holds("lead.price", "gte", value, seen) is (seen >= value)
    assert holds("lead.price", "lt", value, seen) is (seen < value)
    assert holds("lead.price", "lte", value, seen) is (seen <= value)
    low, high = sorted((value, other))
    assert holds("lead.price", "between", [low, high], seen) is (low <= seen <= high)
    assert holds("lead.price", "in", [value, other], seen) is (seen in (value, other))
    assert holds("lead.price", "not_in", [value, other], seen) is (seen not in (value, other))
    assert not holds("lead.price", "is_empty", None, seen)


@given(TEXTS, TEXTS, TEXTS)
def test_text_operators_agree_with_python_ignoring_case(seen: str, value: str, other: str) -> None:
    folded, wanted = seen.casefold(), value.casefold()
    assert holds("lead.name", "equals", value, seen) is (folded == wanted)
    assert holds("lead.name", "not_equals", value, seen) is (folded != wanted)
    assert holds("lead.name", "contains", value, seen) is (wanted in folded)
    assert holds("lead.name", "not_contains", value, seen) is (wanted not in folded)
    assert holds("lead.name", "starts_with", value, seen) is folded.startswith(wanted)
    assert holds("lead.name", "in", [value, other], seen) is (folded in (wanted, other.casefold()))
    assert holds("lead.name", "is_empty", None, seen) is (not seen.strip())
    assert holds("lead.name", "is_not_empty", None, seen) is bool(seen.strip())


@given(st.lists(TEXTS, max_size=5), TEXTS)
def test_list_operators_agree_with_python(seen: list[str], value: str) -> None:
    has = value.casefold() in [tag.casefold() for tag in seen]
    assert holds("lead.tags", "contains", value, seen) is has
    assert holds("lead.tags", "not_contains", value, seen) is not has
    assert holds("lead.tags", "is_empty", None, seen) is (not seen)


@given(st.booleans(), st.booleans())
def test_boolean_operators_agree_with_python(seen: bool, value: bool) -> None:
    assert holds("time.within_working_hours", "equals", value, seen) is (seen == value)
    assert holds("time.within_working_hours", "not_equals", value, seen) is (seen != value)


SIMPLE_PATTERNS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "[a-c]", r"\d", ".", "(?:ab|c)", r"\s", "^", "$"]),
        st.sampled_from(["", "?", "+", "*", "{1,3}"]),
    ),
    min_size=1,
    max_size=5,
).map(
    lambda parts: "".join(
        atom + (quantifier if atom not in "^$" else "") for atom, quantifier in parts
    )
)


@given(SIMPLE_PATTERNS, st.text(alphabet="abcABC 123", max_size=30))
def test_matches_agrees_with_python_re(pattern: str, seen: str) -> None:
    expected = re.search(pattern, seen, re.IGNORECASE) is not None
    assert holds("message.text", "matches", pattern, seen) is expected


# --- refusals -------------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["all", "any", "not", "field", "operator", "value", "rule", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=25,
)


@given(JSON)
def test_any_json_parses_or_is_refused_with_a_message_and_a_path(tree: object) -> None:
    error = refusal(tree)
    if error is not None:
        assert error.message
        assert error.path.startswith("conditions")


# (replacement, the part of the path the refusal points at below the replaced leaf)
BREAKAGES = st.sampled_from(
    [
        (compare("lead.nosuch", "equals", 1), ".field"),
        (compare("lead.name", "gt", 1), ".operator"),
        (compare("lead.price", "gt", "abc"), ".value"),
        (compare("lead.price", "between", [3, 1]), ".value"),
        (compare("lead.tags", "contains", None), ".value"),
        (compare("message.text", "matches", "(x+)*y"), ".value"),
        ({**compare("lead.name", "is_empty"), "colour": "red"}, ".colour"),
        ({"all": [], "not": {}}, ""),
        ("lead.name equals x", ""),
        ({"rule": "not-an-id"}, ".rule"),
    ]
)


def leaf_paths(tree: dict[str, Any], path: str = "conditions") -> list[tuple[str, list[Any]]]:
    """Where a leaf can be replaced: its path, and the key list leading to it from the root."""
    found: list[tuple[str, list[Any]]] = []

    def walk(node: dict[str, Any], node_path: str, keys: list[Any]) -> None:
        if "all" in node or "any" in node:
            kind = "all" if "all" in node else "any"
            for index, child in enumerate(node[kind]):
                walk(child, f"{node_path}.{kind}[{index}]", [*keys, kind, index])
        elif "not" in node:
            walk(node["not"], f"{node_path}.not", [*keys, "not"])
        else:
            found.append((node_path, keys))

    walk(tree, path, [])
    return found


@given(TREES, BREAKAGES, st.data())
def test_a_tree_with_one_broken_part_is_refused_at_that_part(
    tree: dict[str, Any], breakage: tuple[object, str], data: st.DataObject
) -> None:
    tree = copy.deepcopy(tree)
    leaves = leaf_paths(tree)
    assume(leaves)
    path, keys = data.draw(st.sampled_from(leaves))
    replacement, below = breakage
    broken: object = replacement
    if keys:
        parent = tree
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = replacement
        broken = tree
    error = refusal(broken)
    assert error is not None, f"accepted {broken!r}"
    assert error.message
    assert error.path == path + below


@given(
    st.sampled_from(["(", "(?:", "(?P<g>"]),
    st.sampled_from(["a", ".", r"\w", "[0-9]", "x|y", "a b"]),
    st.sampled_from(["+", "*", "{1,}", "{3,}", "+?", "*?"]),
    st.sampled_from([")+", ")*", "){2,}", "){20}", "){2,5}", ")+?"]),
    st.sampled_from(["", "^", "z"]),
    st.sampled_from(["", "$", "!"]),
)
def test_nested_unbounded_repeats_are_refused(
    opening: str, atom: str, inner: str, outer: str, before: str, after: str
) -> None:
    pattern = f"{before}{opening}{atom}{inner}{outer}{after}"
    error = refusal(compare("message.text", "matches", pattern))
    assert error is not None, f"accepted {pattern!r}"
    assert "may take exponential time" in error.message
    assert error.path == "conditions.value"
