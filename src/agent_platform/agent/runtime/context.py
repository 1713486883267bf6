"""Fitting a conversation into the model's context: which turns stay verbatim, which are
summarised.

Tokens are estimated from characters, with no tokenizer: one token per three characters,
rounded up, plus four per message for the chat format's framing. English runs near four
characters a token and Russian nearer two or three, so the estimate is generous for English
and close for Russian: the context may be underused, not overflowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from agent_platform.agent.runtime.prompt import Turn

CHARS_PER_TOKEN = 3
TOKENS_PER_MESSAGE = 4


class HistoryFit(NamedTuple):
    to_summarise: tuple[Turn, ...]
    """The older turns, for the summary."""
    verbatim: tuple[Turn, ...]
    """The newest turns, given to the model as they are."""


def estimate_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_turn_tokens(turn: Turn) -> int:
    calls = sum(
        estimate_tokens(call.name) + estimate_tokens(call.arguments) for call in turn.tool_calls
    )
    return TOKENS_PER_MESSAGE + estimate_tokens(turn.content) + calls


def fit_history(turns: Sequence[Turn], budget: int) -> HistoryFit:
    """The newest turns that fit in `budget` tokens stay verbatim; the older ones are to be
    summarised.

    A tool call and its results are kept or summarised together: the chat format rejects a
    result without its call. The newest turn (with its tool results) is always kept, even
    over budget, since the model must see what it answers.
    """
    kept_from = len(turns)
    used = 0
    for unit_start in reversed(_unit_starts(turns)):
        cost = sum(estimate_turn_tokens(turn) for turn in turns[unit_start:kept_from])
        if kept_from < len(turns) and used + cost > budget:
            break
        used += cost
        kept_from = unit_start
    return HistoryFit(tuple(turns[:kept_from]), tuple(turns[kept_from:]))


def _unit_starts(turns: Sequence[Turn]) -> list[int]:
    """Where each unit of turns begins: a tool result joins the turn before it."""
    return [index for index, turn in enumerate(turns) if index == 0 or turn.role != "tool"]
