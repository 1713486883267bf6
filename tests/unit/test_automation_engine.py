"""The rule engine as an admin meets it: what a saved tree is refused for (message and path),
and what an evaluation explains (the trace) — changes, rule references, regular expressions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from agent_platform.automation.engine import (
    MAX_DEPTH,
    MAX_NODES,
    All,
    AnyOf,
    Compare,
    Facts,
    Not,
    RuleError,
    RuleRef,
    evaluate,
    parse_condition,
    rule_ids,
)
from agent_platform.automation.fields import FIELDS, OPERATORS, FieldType, field_spec


def refusal(tree: object, **options: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse_condition(tree, **options)
    return caught.value


def compare(field: str, operator: str, value: object = None) -> dict[str, Any]:
    node: dict[str, Any] = {"field": field, "operator": operator}
    if value is not None:
        node["value"] = value
    return node


def nested_nots(levels: int) -> dict[str, Any]:
    tree: dict[str, Any] = compare("lead.id", "is_not_empty")
    for _ in range(levels):
        tree = {"not": tree}
    return tree


# --- the catalog --------------------------------------------------------------------------


def test_custom_fields_by_id_or_code_are_fields_of_any_type() -> None:
    by_id, by_code = field_spec("lead.custom_fields.123"), field_spec("lead.custom_fields.BUDGET")
    assert by_id is not None
    assert by_id.type is FieldType.ANY
    assert by_code is not None
    assert by_code.group == "lead"
    assert field_spec("lead.custom_fields.") is None
    assert field_spec("lead.nmae") is None


def test_every_catalog_field_has_a_group_a_description_and_operators() -> None:
    for name, spec in FIELDS.items():
        assert spec.name == name
        assert name.startswith(spec.group + ".")
        assert spec.description
        assert OPERATORS[spec.type]


# --- parsing ---------------------------------------------------------------------------------


def test_a_tree_parses_into_conditions() -> None:
    rule = str(uuid.uuid4())
    condition = parse_condition(
        {
            "all": [
                compare("lead.price", "gt", 1000),
                {"any": [compare("lead.tags", "contains", "vip"), {"rule": rule.upper()}]},
                {"not": compare("lead.status_id", "in", [142, 143])},
            ]
        }
    )
    assert condition == All(
        (
            Compare("lead.price", "gt", 1000),
            AnyOf((Compare("lead.tags", "contains", "vip"), RuleRef(rule))),
            Not(Compare("lead.status_id", "in", (142, 143))),
        )
    )
    assert rule_ids(condition) == {rule}


@pytest.mark.parametrize(
    ("tree", "path", "message"),
    [
        (compare("lead.nmae", "equals", "x"), "conditions.field", "unknown field 'lead.nmae'"),
        (
            compare("lead.name", "gt", 5),
            "conditions.operator",
            "operator 'gt' does not apply to lead.name (string); use one of: equals,",
        ),
        (
            compare("lead.price", "gt", "abc"),
            "conditions.value",
            "value for lead.price must be a number, not 'abc'",
        ),
        (
            compare("lead.price", "equals", True),
            "conditions.value",
            "value for lead.price must be a number, not true",
        ),
        (compare("lead.price", "gt"), "conditions.value", "value for lead.price is required"),
        (compare("lead.name", "is_empty", "x"), "conditions.value", "takes no value"),
        (
            compare("lead.price", "between", [5, 1]),
            "conditions.value",
            "with low ≤ high, not [5, 1]",
        ),
        (compare("lead.price", "between", [5]), "conditions.value", "two numbers [low, high]"),
        (compare("lead.status_id", "in", []), "conditions.value", "at least one value"),
        (
            compare("lead.status_id", "in", list(range(501))),
            "conditions.value",
            "lists 501 values; at most 500",
        ),
        (
            compare("lead.status_id", "in", [142, "won"]),
            "conditions.value[1]",
            "each value for lead.status_id must be a number, not 'won'",
        ),
        (
            compare("time.within_working_hours", "equals", "yes"),
            "conditions.value",
            "must be true or false",
        ),
        (compare("lead.name", "frobs", "x"), "conditions.operator", "unknown operator 'frobs'"),
        ({"field": "lead.name"}, "conditions.operator", "operator is required"),
        (
            {"field": "lead.name", "operator": "equals", "value": "x", "note": 1},
            "conditions.note",
            "unknown key 'note'",
        ),
        ({"all": [], "any": []}, "conditions", "this one has all and any"),
        ({}, "conditions", "a condition needs one of"),
        ([], "conditions", "a condition must be an object"),
        ({"all": {"field": "lead.id"}}, "conditions.all", "all must be a list of conditions"),
        ({"not": []}, "conditions.not", "not takes one condition"),
        ({"rule": "nope"}, "conditions.rule", "rule must be the id of a saved rule, not 'nope'"),
        (
            compare("lead.custom_fields.", "equals", "x"),
            "conditions.field",
            "name the custom field by id or code",
        ),
        (
            compare("message.text", "equals", "x" * 1001),
            "conditions.value",
            "1001 characters long; at most 1000",
        ),
    ],
)
def test_an_invalid_condition_is_refused_with_a_clear_message_and_its_path(
    tree: object, path: str, message: str
) -> None:
    error = refusal(tree)
    assert error.path == path
    assert message in error.message
    assert str(error) == f"{path}: {error.message}"


def test_an_unknown_field_suggests_the_close_one() -> None:
    assert "did you mean 'lead.name'?" in refusal(compare("lead.nmae", "equals", "x")).message


def test_the_path_leads_into_nested_groups() -> None:
    tree = {
        "all": [
            compare("lead.id", "is_not_empty"),
            {"any": [compare("lead.price", "gt", "abc")]},
        ]
    }
    assert refusal(tree).path == "conditions.all[1].any[0].value"
    assert (
        refusal(tree, path="steps[0].conditions").path == "steps[0].conditions.all[1].any[0].value"
    )


def test_nesting_is_limited_to_max_depth_levels() -> None:
    parse_condition(nested_nots(MAX_DEPTH))
    error = refusal(nested_nots(MAX_DEPTH + 1))
    assert error.message == f"conditions are nested deeper than {MAX_DEPTH} levels"
    assert error.path == "conditions" + ".not" * MAX_DEPTH


def test_size_is_limited_to_max_nodes() -> None:
    parse_condition({"all": [compare("lead.id", "is_not_empty")] * (MAX_NODES - 1)})
    error = refusal({"all": [compare("lead.id", "is_not_empty")] * MAX_NODES})
    assert error.message.startswith(f"conditions have more than {MAX_NODES} parts")
    assert error.path == f"conditions.all[{MAX_NODES - 1}]"


def test_a_saved_rule_cannot_refer_to_rules() -> None:
    error = refusal({"any": [{"rule": str(uuid.uuid4())}]}, allow_rule_refs=False)
    assert error.path == "conditions.any[0].rule"
    assert "a rule cannot refer to another rule" in error.message


@pytest.mark.parametrize(
    "pattern", ["(a+)+", "(a*)*", "(.*a){20}", r"(\w+\s?)*$", "(?:x|(y+))+z", "((a)+b)+"]
)
def test_patterns_that_may_take_exponential_time_are_refused(pattern: str) -> None:
    error = refusal(compare("message.text", "matches", pattern))
    assert error.path == "conditions.value"
    assert "may take exponential time" in error.message


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(ab", "not a valid regular expression: missing ), unterminated subpattern"),
        ("a" * 201, "201 characters long; at most 200"),
    ],
)
def test_invalid_or_long_patterns_are_refused(pattern: str, message: str) -> None:
    assert message in refusal(compare("message.text", "matches", pattern)).message


@pytest.mark.parametrize("pattern", [r"^\+?\d{10,12}$", r"(price|cost)s?", r"(ab){3}", "a+b*c"])
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    assert parse_condition(compare("message.text", "matches", pattern)) == Compare(
        "message.text", "matches", pattern
    )


# --- evaluation and its trace ---------------------------------------------------------------


def test_no_condition_always_matches() -> None:
    evaluation = evaluate(None, Facts({}))
    assert evaluation.matched
    assert evaluation.trace == {"matched": True, "always": True}


def test_the_trace_explains_every_condition_with_the_values_seen() -> None:
    condition = parse_condition(
        {
            "all": [
                compare("lead.price", "gte", 1000),
                {
                    "any": [
                        compare("lead.tags", "contains", "VIP"),
                        compare("lead.name", "is_empty"),
                    ]
                },
                {"not": compare("lead.status_id", "in", [142, 143])},
            ]
        }
    )
    facts = Facts({"lead.price": 500, "lead.tags": ["vip", "new"], "lead.status_id": 10})
    evaluation = evaluate(condition, facts)
    assert not evaluation.matched
    assert evaluation.trace == {
        "all": [
            {
                "field": "lead.price",
                "operator": "gte",
                "value": 1000,
                "seen": 500,
                "matched": False,
            },
            {
                "any": [
                    {
                        "field": "lead.tags",
                        "operator": "contains",
                        "value": "VIP",
                        "seen": ["vip", "new"],
                        "matched": True,
                    },
                    {
                        "field": "lead.name",
                        "operator": "is_empty",
                        "value": None,
                        "seen": None,
                        "matched": True,
                    },
                ],
                "matched": True,
            },
            {
                "not": {
                    "field": "lead.status_id",
                    "operator": "in",
                    "value": [142, 143],
                    "seen": 10,
                    "matched": False,
                },
                "matched": True,
            },
        ],
        "matched": False,
    }


@pytest.mark.parametrize(
    ("operator", "previous", "current", "matched"),
    [
        ("changed_to", 100, 142, True),
        ("changed_to", 142, 142, False),  # it was there already
        ("changed_to", None, 142, True),  # unknown before counts as different
        ("changed_to", 142, 100, False),
        ("changed_from", 142, 100, True),
        ("changed_from", 142, 142, False),
        ("changed_from", None, 100, False),
        ("changed_from", 100, 142, False),
    ],
)
def test_changed_to_and_changed_from_compare_with_the_lead_before_the_event(
    operator: str, previous: int | None, current: int, matched: bool
) -> None:
    condition = parse_condition(compare("lead.status_id", operator, 142))
    before = {} if previous is None else {"lead.status_id": previous}
    evaluation = evaluate(condition, Facts({"lead.status_id": current}, before))
    assert evaluation.matched is matched
    assert evaluation.trace["seen"] == current
    assert evaluation.trace["previous"] == previous


def test_a_referenced_rule_is_evaluated_and_its_trace_nested() -> None:
    rule = str(uuid.uuid4())
    rules = {rule: parse_condition(compare("lead.price", "gt", 10), allow_rule_refs=False)}
    evaluation = evaluate(parse_condition({"rule": rule}), Facts({"lead.price": 50}), rules)
    assert evaluation.matched
    assert evaluation.trace == {
        "rule": rule,
        "matched": True,
        "trace": {
            "field": "lead.price",
            "operator": "gt",
            "value": 10,
            "seen": 50,
            "matched": True,
        },
    }


@pytest.mark.parametrize(
    ("rules", "reason"),
    [({}, "the rule does not exist"), ("disabled", "the rule is disabled")],
)
def test_an_absent_or_disabled_rule_does_not_match_and_says_why(rules: object, reason: str) -> None:
    rule = str(uuid.uuid4())
    known = {rule: None} if rules == "disabled" else {}
    evaluation = evaluate(
        parse_condition({"not": {"rule": rule}}), Facts({"lead.price": 50}), known
    )
    assert evaluation.trace["not"] == {"rule": rule, "matched": False, "reason": reason}
    assert evaluation.matched  # `not` of a rule that cannot match


def test_text_comparisons_ignore_case() -> None:
    facts = Facts({"message.text": "Hello, what is the PRICE?", "contact.name": "Anna"})
    for tree in (
        compare("message.text", "contains", "price"),
        compare("message.text", "starts_with", "hello"),
        compare("message.text", "matches", r"\bprice\b"),
        compare("contact.name", "equals", "ANNA"),
        compare("contact.name", "in", ["anna", "boris"]),
    ):
        assert evaluate(parse_condition(tree), facts).matched, tree


def test_custom_fields_compare_numbers_given_as_text() -> None:
    facts = Facts({"lead.custom_fields.budget": "1500", "lead.custom_fields.city": "Berlin"})
    assert evaluate(
        parse_condition(compare("lead.custom_fields.budget", "gt", 1000)), facts
    ).matched
    assert evaluate(
        parse_condition(compare("lead.custom_fields.budget", "equals", 1500)), facts
    ).matched
    assert not evaluate(
        parse_condition(compare("lead.custom_fields.city", "gt", 1000)), facts
    ).matched


def test_a_missing_value_is_empty_and_matches_no_comparison() -> None:
    facts = Facts({})
    assert evaluate(parse_condition(compare("lead.name", "is_empty")), facts).matched
    assert not evaluate(parse_condition(compare("lead.price", "lt", 10)), facts).matched
    assert not evaluate(parse_condition(compare("lead.name", "equals", "")), facts).matched
    assert evaluate(parse_condition(compare("lead.name", "not_contains", "x")), facts).matched


def test_a_pattern_that_runs_too_long_does_not_match_and_the_trace_says_so() -> None:
    # Five unbounded repeats one after another pass the nesting check, yet on a long text
    # without the final "b" backtracking tries about n⁵ splits: far past the time limit.
    condition = parse_condition(compare("message.text", "matches", ".*a.*a.*a.*a.*a.*b"))
    text = "a" * 20_000
    evaluation = evaluate(condition, Facts({"message.text": text}))
    assert not evaluation.matched
    assert evaluation.trace["error"] == "regex timed out"
    assert evaluation.trace["seen"] == text[:500] + "…"  # a long text is cut in the trace
