"""Fitting a conversation into the context: the newest turns verbatim, a call with its results."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent_platform.agent.runtime.context import (
    CHARS_PER_TOKEN,
    TOKENS_PER_MESSAGE,
    estimate_tokens,
    estimate_turn_tokens,
    fit_history,
)
from agent_platform.agent.runtime.prompt import ToolCall, Turn


def tokens(turns: tuple[Turn, ...] | list[Turn]) -> int:
    return sum(estimate_turn_tokens(turn) for turn in turns)


def test_tokens_are_estimated_from_characters_rounding_up() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("x" * CHARS_PER_TOKEN * 5) == 5
    call = ToolCall("c1", "add_tag", '{"tag": "vip"}')
    assert estimate_turn_tokens(Turn("assistant", "", (call,))) == (
        TOKENS_PER_MESSAGE + estimate_tokens("add_tag") + estimate_tokens('{"tag": "vip"}')
    )


def test_older_turns_go_to_the_summary_the_newest_stay() -> None:
    turns = [Turn("user", "x" * 30), Turn("assistant", "y" * 30), Turn("user", "z" * 30)]
    per_turn = TOKENS_PER_MESSAGE + 10
    fit = fit_history(turns, budget=2 * per_turn)
    assert fit.to_summarise == (turns[0],)
    assert fit.verbatim == tuple(turns[1:])


def test_a_tool_call_and_its_results_are_never_split() -> None:
    calls = (ToolCall("c1", "add_tag", "{}"), ToolCall("c2", "create_task", "{}"))
    turns = [
        Turn("user", "Запишите меня"),
        Turn("assistant", "", calls),
        Turn("tool", "ok", tool_call_id="c1"),
        Turn("tool", "ok", tool_call_id="c2"),
        Turn("assistant", "Готово"),
    ]
    just_the_results_fit = tokens(turns[2:])
    fit = fit_history(turns, budget=just_the_results_fit)
    assert fit.verbatim == (turns[4],)
    assert fit_history(turns, budget=tokens(turns[1:])).verbatim == tuple(turns[1:])


def test_the_newest_turn_is_kept_even_over_budget() -> None:
    turns = [Turn("user", "short"), Turn("user", "x" * 10_000)]
    assert fit_history(turns, budget=10) == ((turns[0],), (turns[1],))
    assert fit_history([], budget=10) == ((), ())


# --- properties -----------------------------------------------------------------------------

TEXT = st.text(max_size=60)


@st.composite
def exchanges(draw: st.DrawFn) -> list[Turn]:
    """A turn, or an assistant's tool calls followed by one result per call."""
    kind = draw(st.sampled_from(["user", "assistant", "manager", "tool calls"]))
    if kind != "tool calls":
        return [Turn(kind, draw(TEXT))]
    ids = draw(st.lists(st.text("abc123", min_size=1, max_size=4), min_size=1, max_size=3))
    calls = tuple(ToolCall(call_id, "add_tag", draw(TEXT)) for call_id in ids)
    return [
        Turn("assistant", draw(TEXT), calls),
        *(Turn("tool", draw(TEXT), tool_call_id=call_id) for call_id in ids),
    ]


conversations = st.lists(exchanges(), max_size=12).map(
    lambda parts: [turn for part in parts for turn in part]
)


@given(conversations, st.integers(0, 400))
def test_fit_history_invariants(turns: list[Turn], budget: int) -> None:
    to_summarise, verbatim = fit_history(turns, budget)
    assert [*to_summarise, *verbatim] == turns
    if not turns:
        return
    # The newest exchange is always there.
    assert verbatim
    # A result is never cut from its call.
    assert verbatim[0].role != "tool"
    newest_exchange_start = max(index for index, turn in enumerate(turns) if turn.role != "tool")
    if len(verbatim) > len(turns) - newest_exchange_start:
        assert tokens(verbatim) <= budget
    # Nothing that would fit is summarised: the exchange just before the kept turns is over.
    if to_summarise:
        previous_start = max(
            index for index, turn in enumerate(to_summarise) if turn.role != "tool"
        )
        assert tokens(turns[previous_start:]) > budget
