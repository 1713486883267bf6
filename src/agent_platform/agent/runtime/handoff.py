"""When the agent gives a conversation to a person, and how the model asks for one."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent_platform.agent.runtime.decisions import HandOff, HandoffReason
from agent_platform.agent.runtime.phrases import matching_phrases
from agent_platform.agent.runtime.tools import HANDOFF_TOOL

# For models or agents without function calling: a reply that starts with this asks for a
# person. The prompt tells the model so when the agent honours such requests.
HANDOFF_MARKER = "[HANDOFF]"


@dataclass(frozen=True)
class HandoffRules:
    keywords: tuple[str, ...] = ()
    max_turns: int | None = None
    """Customer turns the agent answers before handing off; None = no limit."""
    on_llm_request: bool = True
    max_consecutive_errors: int | None = None
    responsible_user_id: int | None = None
    task_text: str = ""
    pause_minutes: int | None = None
    """How long a handoff pauses the agent; None = until someone resumes it."""


def decide_handoff(
    rules: HandoffRules,
    *,
    customer_text: str,
    customer_turns: int,
    consecutive_errors: int,
    llm_asked: bool = False,
) -> HandOff | None:
    """Whether to hand off now, and why; the first reason wins, in this order: the customer
    asked (keyword), the model asked, replies keep failing, the conversation is too long.

    `customer_turns` counts the customer's messages including this one.
    """
    keywords = matching_phrases(customer_text, rules.keywords)
    if keywords:
        return HandOff(HandoffReason.KEYWORD, matched=keywords[0])
    if llm_asked and rules.on_llm_request:
        return HandOff(HandoffReason.LLM_REQUEST)
    if rules.max_consecutive_errors is not None and (
        consecutive_errors >= rules.max_consecutive_errors
    ):
        return HandOff(HandoffReason.CONSECUTIVE_ERRORS)
    if rules.max_turns is not None and customer_turns > rules.max_turns:
        return HandOff(HandoffReason.MAX_TURNS)
    return None


def llm_asked_for_handoff(tool_call_names: Iterable[str], reply_text: str) -> bool:
    return HANDOFF_TOOL in tool_call_names or reply_text.lstrip().startswith(HANDOFF_MARKER)


def without_handoff_marker(reply_text: str) -> str:
    """The reply as the customer may see it."""
    stripped = reply_text.lstrip()
    if stripped.startswith(HANDOFF_MARKER):
        return stripped.removeprefix(HANDOFF_MARKER).lstrip()
    return reply_text


def handoff_pause_end(rules: HandoffRules, handed_off_at: datetime) -> datetime | None:
    """When a handoff's pause ends; None while it lasts until someone resumes the agent."""
    if rules.pause_minutes is None:
        return None
    return handed_off_at + timedelta(minutes=rules.pause_minutes)
