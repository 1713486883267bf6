"""The evaluation dataset's format and the expectations checker: pure, no database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_platform.agent.eval_dataset import DatasetError, Expectations, parse_dataset
from agent_platform.agent.eval_expectations import CaseOutcome, unmet_expectations

EXAMPLE = Path(__file__).parents[2] / "examples" / "eval" / "cases.jsonl"


def line(**case: object) -> str:
    return json.dumps({"name": "case", "messages": ["Hi"]} | case)


def test_the_example_dataset_parses() -> None:
    cases = parse_dataset(EXAMPLE.read_text())

    assert len(cases) >= 3
    assert all(case.messages for case in cases)


def test_blank_lines_are_skipped_and_defaults_filled() -> None:
    cases = parse_dataset(f"\n{line()}\n\n{line(name='second', at='2025-01-06T10:00:00+03:00')}\n")

    assert [case.name for case in cases] == ["case", "second"]
    assert cases[0].at is None
    assert cases[0].lead.id == 1
    assert cases[0].expect == Expectations()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{line()}\n{{not json", "line 2: not JSON"),
        (f"{line()}\n\n{line(expect={'reply_contain': ['x']})}", "line 3: expect.reply_contain"),
        (line(messages=[]), "line 1: messages"),
        (line(expect={"handoff": "maybe"}), "line 1: expect.handoff"),
        (line(at="2025-01-06T10:00:00"), "line 1: at"),
        (line(lead={"stage": 5}), "line 1: lead.stage"),
        ("[1, 2]", "line 1: the case"),
        ("\n\n", "no cases"),
    ],
)
def test_a_bad_line_is_named_with_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_dataset(text)


def outcome(*replies: str, handed_off: bool = False, tools: tuple[str, ...] = ()) -> CaseOutcome:
    return CaseOutcome(replies=replies, handed_off=handed_off, tools_called=tools)


def test_met_expectations_give_no_failures() -> None:
    expect = Expectations(
        reply_contains=["PRICE"],
        reply_not_contains=["discount"],
        tool_called=["add_tag"],
        tool_not_called=["move_stage"],
        handoff=False,
        silent=False,
    )

    assert unmet_expectations(expect, outcome("Hello", "Our price is 5", tools=("add_tag",))) == []


def test_each_unmet_expectation_is_one_failure() -> None:
    expect = Expectations(
        reply_contains=["price"],
        reply_not_contains=["hello"],
        tool_called=["add_tag"],
        tool_not_called=["move_stage"],
        handoff=True,
        silent=True,
    )

    assert unmet_expectations(expect, outcome("Hello", tools=("move_stage",))) == [
        "no reply contains 'price'",
        "a reply contains 'hello'",
        "tool 'add_tag' was not called",
        "tool 'move_stage' was called",
        "expected a handoff",
        "expected silence",
    ]


def test_silence_and_handoff_are_checked_both_ways() -> None:
    assert unmet_expectations(
        Expectations(silent=False, handoff=False), outcome(handed_off=True)
    ) == [
        "handed off unexpectedly",
        "stayed silent",
    ]
