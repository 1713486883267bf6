"""Whether what happened in an evaluated conversation meets the case's expectations. Pure.

Replies are checked together: a phrase expected in "the reply" may come in any of the
conversation's replies, and a forbidden one must be in none. Phrases match without regard
to case, since a reply's capitalisation is the model's choice, not the agent's behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_platform.agent.eval_dataset import Expectations


@dataclass(frozen=True)
class CaseOutcome:
    """What the agent did in one scripted conversation."""

    replies: tuple[str, ...]
    """Every text the customer was sent, the out-of-hours message included."""
    handed_off: bool
    tools_called: tuple[str, ...]
    """The tools that ran successfully, in order."""

    @property
    def silent(self) -> bool:
        return not self.replies


def unmet_expectations(expect: Expectations, outcome: CaseOutcome) -> list[str]:
    """Why the case fails, one line per unmet expectation; empty when it passes."""
    said = [reply.casefold() for reply in outcome.replies]
    problems = [
        f"no reply contains {phrase!r}"
        for phrase in expect.reply_contains
        if not any(phrase.casefold() in reply for reply in said)
    ]
    problems += [
        f"a reply contains {phrase!r}"
        for phrase in expect.reply_not_contains
        if any(phrase.casefold() in reply for reply in said)
    ]
    problems += [
        f"tool {name!r} was not called"
        for name in expect.tool_called
        if name not in outcome.tools_called
    ]
    problems += [
        f"tool {name!r} was called"
        for name in expect.tool_not_called
        if name in outcome.tools_called
    ]
    if expect.handoff is not None and expect.handoff != outcome.handed_off:
        problems.append("expected a handoff" if expect.handoff else "handed off unexpectedly")
    if expect.silent is not None and expect.silent != outcome.silent:
        problems.append("expected silence" if expect.silent else "stayed silent")
    return problems
